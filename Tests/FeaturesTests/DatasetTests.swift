import XCTest
@testable import Features
import Tensors
import CAllocCounter
import TestSupport

final class DatasetTests: XCTestCase {
    func testRoundTripEveryLayoutAndDtype() throws {
        for dtype in [NpyDType.float32, .float16] {
            let dir = TempDir()
            defer { dir.cleanUp() }
            let m = try Known.write(dir.sub("d"), dtype: dtype)
            XCTAssertEqual(m.rows, 12)
            let ds = try FeatureDataset.open(dir.sub("d"))
            XCTAssertEqual(ds.count, 12)
            XCTAssertEqual(ds.indices(of: .train), Array(0..<8))
            XCTAssertEqual(ds.indices(of: .eval), Array(8..<12))
            XCTAssertEqual(try ds.variantIndex("long_de"), 2)
            XCTAssertEqual(ds.concepts(of: 9), [9])
            XCTAssertTrue(DatasetVerifier.verify(dir.sub("d")).problems.isEmpty)

            // Rows from all three shards, out of order, two variants.
            let rows = [11, 0, 6, 4, 5]
            let variants = [2, 0]
            let r = rows.count, de = Known.dEmbed, dl = Known.dLLM
            var llm = [Float](repeating: .nan, count: 2 * r * dl)
            var clip = [Float](repeating: .nan, count: 2 * r * de)
            var image = [Float](repeating: .nan, count: r * de)
            ds.read(rows: rows[...], variants: variants, llm: &llm, clipText: &clip, image: &image)
            for (i, g) in rows.enumerated() {
                for j in 0..<de { XCTAssertEqual(image[i * de + j], Known.value(0, g, 0, j)) }
                for (k, v) in variants.enumerated() {
                    for j in 0..<de { XCTAssertEqual(clip[(k * r + i) * de + j], Known.value(1, g, v, j)) }
                    for j in 0..<dl { XCTAssertEqual(llm[(k * r + i) * dl + j], Known.value(2, g, v, j)) }
                }
            }
            // One variant per row.
            let perRow = [1, 2, 0, 0, 1]
            var llm1 = [Float](repeating: .nan, count: r * dl)
            var clip1 = [Float](repeating: .nan, count: r * de)
            ds.read(rows: rows[...], variantPerRow: perRow[...], llm: &llm1, clipText: &clip1, image: nil)
            for (i, g) in rows.enumerated() {
                for j in 0..<dl { XCTAssertEqual(llm1[i * dl + j], Known.value(2, g, perRow[i], j)) }
                for j in 0..<de { XCTAssertEqual(clip1[i * de + j], Known.value(1, g, perRow[i], j)) }
            }
        }
    }

    func testSteadyStateReadsAllocateNothing() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        try Known.write(dir.sub("d"), dtype: .float16)
        let ds = try FeatureDataset.open(dir.sub("d"))
        var sampler = try GlobalBatchSampler(population: ds.indices(of: .train), batchSize: 4, seed: 3)
        let llm = Slab(count: 2 * 4 * Known.dLLM), clip = Slab(count: 2 * 4 * Known.dEmbed), image = Slab(count: 4 * Known.dEmbed)
        let variants = [0, 2]
        var perRow = [Int](repeating: 0, count: 2)
        var position = EpochPosition(epoch: 0, step: 0)
        func step() {
            let rows = sampler.slice(at: position, rank: 1, worldSize: 2)
            ds.read(rows: rows, variants: variants, llm: llm.base, clipText: clip.base, image: image.base)
            perRow.withUnsafeMutableBufferPointer {
                GlobalBatchSampler.variants(seed: 3, epoch: position.epoch, rows: rows, allowed: variants, into: $0)
            }
            ds.read(rows: rows, variantPerRow: perRow[...], llm: llm.base, clipText: clip.base, image: nil)
            position = sampler.advance(position)
        }
        // The first step instantiates type metadata (a one-time cost); count the steps after it,
        // across an epoch boundary within the same population (2 steps per epoch here).
        step()
        alloc_counter_start()
        for _ in 0..<6 { step() }
        let allocations = alloc_counter_stop()
        XCTAssertEqual(allocations, 0, "steady-state reads allocated \(allocations) times")
    }

    func testManifestHashIsStableAndSensitive() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let a = try Known.write(dir.sub("a"))
        let b = try Known.write(dir.sub("b"))
        XCTAssertEqual(a.contentHash, b.contentHash)
        XCTAssertEqual(a.contentHash.count, 16)
        var c = a
        c.description = "other words"
        c.source = .string("elsewhere")
        XCTAssertEqual(c.contentHash, a.contentHash)
        c.shards[1].files["llm.npy"]!.crc32 = "00000000"
        XCTAssertNotEqual(c.contentHash, a.contentHash)
        // Reading back the written manifest gives the same value and the same hash.
        let read = try Manifest.read(dir.sub("a") + "/manifest.json")
        XCTAssertEqual(read, a)
        XCTAssertEqual(Manifest.fnv1a64(Array("a".utf8)), 0xAF63_DC4C_8601_EC8C)
    }

    func testWorldSpecDecodesPartialJSONAndRefusesUnknownKeys() throws {
        let spec = try JSONDecoder().decode(SynthWorldSpec.self, from: Data("{\"pairs\": 10, \"d_llm\": 16}".utf8))
        var want = SynthWorldSpec()
        want.pairs = 10
        want.dLLM = 16
        XCTAssertEqual(spec, want)
        XCTAssertEqual(try JSONDecoder().decode(SynthWorldSpec.self, from: JSONEncoder().encode(want)), want)
        XCTAssertThrowsError(try JSONDecoder().decode(SynthWorldSpec.self, from: Data("{\"pair\": 10}".utf8))) {
            XCTAssertTrue("\($0)".contains("unknown key 'pair'"))
        }
    }
}
