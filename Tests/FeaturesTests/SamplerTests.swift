import XCTest
@testable import Features

final class SamplerTests: XCTestCase {
    func testEachEpochIsAPermutationAndDropsTheRemainder() throws {
        let population = Array(stride(from: 100, to: 237, by: 1))  // N = 137
        var s = try GlobalBatchSampler(population: population, batchSize: 16, seed: 42)
        XCTAssertEqual(s.stepsPerEpoch, 8)  // floor(137 / 16); 9 samples dropped per epoch
        var orders: [[Int]] = []
        for epoch in 0..<3 {
            var seen: [Int] = []
            for step in 0..<s.stepsPerEpoch {
                let batch = s.batch(at: EpochPosition(epoch: epoch, step: step))
                XCTAssertEqual(batch.count, 16)
                seen += batch
            }
            XCTAssertEqual(Set(seen).count, 128)
            XCTAssertTrue(Set(seen).isSubset(of: Set(population)))
            XCTAssertEqual(s.order.sorted(), population)
            orders.append(s.order)
        }
        XCTAssertNotEqual(orders[0], orders[1])
        XCTAssertNotEqual(orders[1], orders[2])
        XCTAssertNotEqual(orders[0], population)
    }

    func testWorkerSlicesCoverTheBatchDisjointlyForEveryWorldSize() throws {
        for batchSize in [1, 3, 5, 8, 13, 64] {
            var s = try GlobalBatchSampler(population: Array(0..<200), batchSize: batchSize, seed: 9)
            for position in [EpochPosition(epoch: 0, step: 0), EpochPosition(epoch: 2, step: s.stepsPerEpoch - 1)] {
                let whole = Array(s.batch(at: position))
                for world in 1...8 {
                    var joined: [Int] = []
                    for rank in 0..<world {
                        let r = GlobalBatchSampler.workerRange(rank: rank, worldSize: world, batchSize: batchSize)
                        XCTAssertEqual(r, (rank * batchSize / world)..<((rank + 1) * batchSize / world))
                        let slice = s.slice(at: position, rank: rank, worldSize: world)
                        XCTAssertEqual(slice.count, r.count)
                        // Sizes differ by at most one (empty slices only when B < W).
                        XCTAssertTrue(slice.count == batchSize / world || slice.count == batchSize / world + 1)
                        joined += slice
                    }
                    XCTAssertEqual(joined, whole, "B=\(batchSize) W=\(world)")
                }
            }
        }
    }

    func testDeterministicAndIndependentOfHistory() throws {
        var a = try GlobalBatchSampler(population: Array(0..<50), batchSize: 7, seed: 5)
        var b = try GlobalBatchSampler(population: Array(0..<50), batchSize: 7, seed: 5)
        let c = try GlobalBatchSampler(population: Array(0..<50), batchSize: 7, seed: 6)
        // b jumps straight to epoch 3 (as after a resume); a walks there.
        for e in 0...3 { a.startEpoch(e) }
        b.startEpoch(3)
        XCTAssertEqual(a.order, b.order)
        a.startEpoch(0)
        XCTAssertNotEqual(a.order, c.order)
        // Positions: advance, wrap, and the global-step round trip.
        var p = EpochPosition(epoch: 0, step: 0)
        for g in 0..<20 {
            XCTAssertEqual(a.position(ofGlobalStep: g), p)
            p = a.advance(p)
        }
        XCTAssertEqual(a.stepsPerEpoch, 7)
        XCTAssertEqual(a.position(ofGlobalStep: 20), EpochPosition(epoch: 2, step: 6))
        XCTAssertEqual(try JSONDecoder().decode(EpochPosition.self, from: JSONEncoder().encode(p)), p)
    }

    func testTooSmallPopulationIsRefused() {
        XCTAssertThrowsError(try GlobalBatchSampler(population: [1, 2, 3], batchSize: 4, seed: 0)) {
            XCTAssertEqual("\($0)", "3 samples are fewer than one batch of 4")
        }
        XCTAssertThrowsError(try GlobalBatchSampler(population: [1], batchSize: 0, seed: 0))
    }

    func testVariantDrawDependsOnlyOnSeedEpochAndSample() throws {
        let allowed = [0, 2, 3]
        var s = try GlobalBatchSampler(population: Array(0..<60), batchSize: 12, seed: 77)
        let position = EpochPosition(epoch: 1, step: 2)
        let whole = s.batch(at: position)
        var expected = [Int](repeating: -1, count: whole.count)
        expected.withUnsafeMutableBufferPointer { GlobalBatchSampler.variants(seed: 77, epoch: 1, rows: whole, allowed: allowed, into: $0) }
        for world in 1...5 {
            var joined: [Int] = []
            for rank in 0..<world {
                let rows = s.slice(at: position, rank: rank, worldSize: world)
                var out = [Int](repeating: -1, count: rows.count)
                out.withUnsafeMutableBufferPointer { GlobalBatchSampler.variants(seed: 77, epoch: 1, rows: rows, allowed: allowed, into: $0) }
                joined += out
            }
            XCTAssertEqual(joined, expected)
        }
        // Every allowed variant is drawn, roughly evenly, and nothing else.
        var counts = [Int: Int]()
        allowed.withUnsafeBufferPointer { a in
            for sample in 0..<3000 { counts[GlobalBatchSampler.variant(seed: 1, epoch: 0, sample: sample, allowed: a), default: 0] += 1 }
        }
        XCTAssertEqual(Set(counts.keys), Set(allowed))
        XCTAssertTrue(counts.values.allSatisfy { $0 > 900 && $0 < 1100 }, "\(counts)")
        // Draws change with the epoch.
        let e0 = allowed.withUnsafeBufferPointer { a in (0..<100).map { GlobalBatchSampler.variant(seed: 1, epoch: 0, sample: $0, allowed: a) } }
        let e1 = allowed.withUnsafeBufferPointer { a in (0..<100).map { GlobalBatchSampler.variant(seed: 1, epoch: 1, sample: $0, allowed: a) } }
        XCTAssertNotEqual(e0, e1)
    }
}
