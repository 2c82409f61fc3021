import Ring
import Wire
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The collectives over the in-memory transport: exact results against plain sums.
final class CollectiveTests: XCTestCase {
    /// Counts of the Gloo-style matrix: 0, 1, W−1, W+1 and a prime.
    func counts(_ w: Int) -> [Int] { Array(Set([0, 1, w - 1, w + 1, 7919])).sorted() }

    typealias Algorithm = (name: String, small: Int, directMaxWorld: Int, directBulk: Bool)

    /// The all-reduce algorithms: direct exchange and ring gather (latency-bound, small
    /// buffers) and the two-phase ring (everything, when small buffers are turned off), as
    /// exchanges (direct links) or as forwarded messages.
    let algorithms: [Algorithm] = [
        ("direct", 64 << 10, 16, true), ("ring gather", 64 << 10, 0, true),
        ("two-phase exchanges", 0, 16, true), ("two-phase ring", 0, 16, false),
    ]

    func testAllReduceEqualsPlainSumForEveryWorldSizeAndCount() {
        for algorithm in algorithms {
            for w in 1...8 { checkAllReduce(w, algorithm) }
        }
    }

    func checkAllReduce(_ w: Int, _ algorithm: Algorithm) {
            for n in counts(w) {
                let out = Shared([[Float]](repeating: [], count: w))
                // Odd segment sizes too, so segments do not line up with blocks.
                var options = RingOptions.with(segmentBytes: n % 2 == 0 ? 64 : 1020)
                options.smallAllReduceBytes = algorithm.small
                options.directMaxWorld = algorithm.directMaxWorld
                options.directBulk = algorithm.directBulk
                let errors = runRing(w, options: options) { r, g in
                    for _ in 0..<2 {  // set up once, run many
                        var x = rankInput(r, n)
                        try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
                        out.values[r] = x
                    }
                }
                XCTAssertEqual(errors.compactMap { $0 }, [], "\(algorithm.name) W=\(w) n=\(n)")
                let want = (0..<n).map { expectedSum(w, $0) }
                for r in 0..<w { XCTAssertNil(firstMismatch(out.values[r], want), "\(algorithm.name) W=\(w) n=\(n) rank \(r)") }
            }
    }

    /// 64 MiB per rank for every world size. Inputs are copied from a pattern (rank r starts at
    /// element r) and compared with memcmp, so the check itself stays fast in debug builds.
    func testAllReduce64MiB() {
        let n = 16 << 20
        let pattern = UnsafeMutableBufferPointer<Float>.allocate(capacity: n + 8)
        defer { pattern.deallocate() }
        for i in 0..<7 { pattern[i] = Float(1 + i) }
        periodicFill(pattern.baseAddress!, total: n + 8, period: 7)
        for w in 1...8 {
            let expected = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
            defer { expected.deallocate() }
            for i in 0..<7 { expected[i] = (0..<w).reduce(Float(0)) { $0 + pattern[i + $1] } }
            periodicFill(expected.baseAddress!, total: n, period: 7)
            let bad = Shared([Int](repeating: -1, count: w))
            let inputs = Shared([pattern.baseAddress!, expected.baseAddress!])
            let errors = runRing(w, options: .with(segmentBytes: 512 << 10)) { r, g in
                let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
                defer { x.deallocate() }
                memcpy(x.baseAddress!, inputs.values[0] + r, n * 4)
                try g.allReduce(x)
                bad.values[r] = memcmp(x.baseAddress!, inputs.values[1], n * 4) == 0 ? 0 : 1
            }
            XCTAssertEqual(errors.compactMap { $0 }, [], "W=\(w)")
            XCTAssertEqual(bad.values, Array(repeating: 0, count: w), "W=\(w): a rank's 64 MiB sum differs")
        }
    }

    func testAllGatherAndReduceScatterWithUnevenCountsIncludingZero() {
        var rng = SplitMix(seed: 7)
        // The all-gather as exchanges (direct links) and round the ring.
        for (w, directBulk) in (1...8).flatMap({ [($0, true), ($0, false)] }) {
            var options = RingOptions.with(segmentBytes: 128)
            options.directBulk = directBulk
            var cases: [[Int]] = [Array(repeating: 0, count: w), (0..<w).map { $0 == w - 1 ? 1000 : 0 }]
            for _ in 0..<3 { cases.append((0..<w).map { _ in rng.next() % 3 == 0 ? 0 : Int(rng.next() % 700) }) }
            for counts in cases {
                let total = counts.reduce(0, +)
                let offsets = counts.indices.map { counts[..<$0].reduce(0, +) }
                let gathered = Shared([[Float]](repeating: [], count: w))
                let scattered = Shared([[Float]](repeating: [], count: w))
                let errors = runRing(w, options: options) { r, g in
                    let local = (0..<counts[r]).map { Float(r * 1000 + $0) }
                    var all = [Float](repeating: -1, count: total)
                    try local.withUnsafeBufferPointer { l in
                        try all.withUnsafeMutableBufferPointer { try g.allGather(local: l, counts: counts, into: $0) }
                    }
                    gathered.values[r] = all
                    let input = rankInput(r, total)
                    var mine = [Float](repeating: -1, count: counts[r])
                    try input.withUnsafeBufferPointer { i in
                        try mine.withUnsafeMutableBufferPointer { try g.reduceScatter(input: i, counts: counts, into: $0) }
                    }
                    scattered.values[r] = mine
                }
                XCTAssertEqual(errors.compactMap { $0 }, [], "W=\(w) counts \(counts) direct bulk \(directBulk)")
                let wantAll = (0..<w).flatMap { b in (0..<counts[b]).map { Float(b * 1000 + $0) } }
                for r in 0..<w {
                    XCTAssertNil(firstMismatch(gathered.values[r], wantAll), "all-gather W=\(w) counts \(counts) rank \(r) direct bulk \(directBulk)")
                    let want = (0..<counts[r]).map { expectedSum(w, offsets[r] + $0) }
                    XCTAssertNil(firstMismatch(scattered.values[r], want), "reduce-scatter W=\(w) counts \(counts) rank \(r)")
                }
            }
        }
    }

    func testAllGatherInPlace() {
        let counts = [3, 0, 5]
        let out = Shared([[Float]](repeating: [], count: 3))
        let errors = runRing(3) { r, g in
            var all = [Float](repeating: -1, count: 8)
            let offset = counts[..<r].reduce(0, +)
            for j in 0..<counts[r] { all[offset + j] = Float(10 * r + j) }
            try all.withUnsafeMutableBufferPointer { buf in
                let mine = UnsafeBufferPointer(rebasing: buf[offset..<(offset + counts[r])])
                try g.allGather(local: mine, counts: counts, into: buf)
            }
            out.values[r] = all
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        for r in 0..<3 { XCTAssertEqual(out.values[r], [0, 1, 2, 20, 21, 22, 23, 24]) }
    }

    func testBroadcastFromEveryRoot() {
        for w in 1...8 {
            let out = Shared([[Float]](repeating: [], count: w))
            let errors = runRing(w, options: .with(segmentBytes: 96)) { r, g in
                for root in 0..<w {
                    var x = (0..<1001).map { r == root ? Float(root * 7 + $0) : -1 }
                    try x.withUnsafeMutableBufferPointer { try g.broadcast($0, root: root) }
                    if x != (0..<1001).map({ Float(root * 7 + $0) }) { out.values[r].append(Float(root)) }
                }
            }
            XCTAssertEqual(errors.compactMap { $0 }, [], "W=\(w)")
            for r in 0..<w { XCTAssertEqual(out.values[r], [], "W=\(w) rank \(r): wrong data from these roots") }
        }
    }

    func testBarrierWaitsForEveryRank() {
        for (w, directMaxWorld) in (1...8).flatMap({ [($0, 16), ($0, 0)] }) {
            let arrived = Shared([Int](repeating: 0, count: w))
            let lock = NSLock()
            let early = Shared([Bool](repeating: false, count: w))
            var options = RingOptions.fast
            options.directMaxWorld = directMaxWorld
            let errors = runRing(w, options: options) { r, g in
                for round in 1...3 {
                    if r == round % w { usleep(20_000) }  // one late rank per round
                    lock.lock(); arrived.values[r] = round; lock.unlock()
                    try g.barrier()
                    lock.lock(); if arrived.values.contains(where: { $0 < round }) { early.values[r] = true }; lock.unlock()
                }
            }
            XCTAssertEqual(errors.compactMap { $0 }, [], "W=\(w)")
            XCTAssertEqual(early.values, Array(repeating: false, count: w), "W=\(w): a rank left a barrier early")
        }
    }

    func testAllReduceOfASubRangeLeavesTheRestAlone() {
        let out = Shared([[Float]](repeating: [], count: 4))
        let errors = runRing(4) { r, g in
            var slab = [Float](repeating: Float(r), count: 1000)
            try slab.withUnsafeMutableBufferPointer { buf in
                try g.allReduce(UnsafeMutableBufferPointer(rebasing: buf[100..<600]))  // one bucket
                try g.allReduce(UnsafeMutableBufferPointer(rebasing: buf[600..<601]))  // another
            }
            out.values[r] = slab
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        for r in 0..<4 {
            let want = (0..<1000).map { (100..<601).contains($0) ? Float(6) : Float(r) }
            XCTAssertNil(firstMismatch(out.values[r], want), "rank \(r)")
        }
    }
}

/// Extends the first `period` elements periodically to `total`, by doubling copies.
func periodicFill(_ p: UnsafeMutablePointer<Float>, total: Int, period: Int) {
    var filled = period
    while filled < total {
        let n = min(filled / period * period, total - filled)
        memcpy(p + filled, p, n * 4)
        filled += n
    }
}

/// A small deterministic generator.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
    }
}
