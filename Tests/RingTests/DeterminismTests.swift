import Ring
import Wire
import XCTest

/// Same inputs → the same bits on every rank, every run and every segment size, summed in the
/// documented order.
final class DeterminismTests: XCTestCase {
    func inputs(_ w: Int, _ n: Int) -> [[Float]] {
        var rng = SplitMix(seed: 99)
        // Mixed magnitudes, so summation order shows in the low bits.
        return (0..<w).map { _ in (0..<n).map { _ in Float(rng.next() % 2_000_001 - 1_000_000) * 1e-3 * Float(1 << (rng.next() % 12)) } }
    }

    func reduce(_ x: [[Float]], segmentBytes: Int, small: Int = 0) -> [[Float]] {
        let w = x.count
        let out = Shared([[Float]](repeating: [], count: w))
        var options = RingOptions.with(segmentBytes: segmentBytes)
        options.smallAllReduceBytes = small
        let errors = runRing(w, options: options) { r, g in
            var mine = x[r]
            try mine.withUnsafeMutableBufferPointer { try g.allReduce($0) }
            out.values[r] = mine
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        return out.values
    }

    func testAllReduceIsBitIdenticalAcrossRanksRunsAndSegmentSizes() {
        let w = 5, n = 10_007
        let x = inputs(w, n)
        let first = reduce(x, segmentBytes: 64)
        // Block b is summed as x[b+1] + x[b+2] + … + x[b], left to right.
        let q = n / w, extra = n % w
        var want = [Float](repeating: 0, count: n)
        var start = 0
        for b in 0..<w {
            let count = q + (b < extra ? 1 : 0)
            for i in start..<(start + count) {
                var s = x[(b + 1) % w][i]
                for k in 2...w { s += x[(b + k) % w][i] }
                want[i] = s
            }
            start += count
        }
        for r in 0..<w { XCTAssertNil(firstMismatch(first[r], want), "rank \(r)") }
        XCTAssertNil(firstMismatch(reduce(x, segmentBytes: 4096)[3], want), "another run, other segments")
        // A different order does give different bits here, so the check above has teeth.
        var naive = [Float](repeating: 0, count: n)
        for r in 0..<w { for i in 0..<n { naive[i] += x[r][i] } }
        XCTAssertNotNil(firstMismatch(naive, want))
    }

    /// For a power-of-two W the latency-bound path is recursive doubling: a pairwise tree,
    /// ((x0 + x1) + (x2 + x3)) + …, the same bits on every rank (partners add the same two
    /// values, and float addition is commutative).
    func testSmallAllReduceOfPowerOfTwoGroupsSumsAPairwiseTree() {
        for w in [4, 8] {
            let n = 999
            let x = inputs(w, n)
            func tree(_ ranks: Range<Int>, _ i: Int) -> Float {
                ranks.count == 1 ? x[ranks.lowerBound][i]
                    : tree(ranks.lowerBound..<(ranks.lowerBound + ranks.count / 2), i) + tree((ranks.lowerBound + ranks.count / 2)..<ranks.upperBound, i)
            }
            let want = (0..<n).map { tree(0..<w, $0) }
            let got = reduce(x, segmentBytes: 4096, small: 64 << 10)
            for r in 0..<w { XCTAssertNil(firstMismatch(got[r], want), "W \(w), rank \(r)") }
            var ordered = x[0]
            for r in 1..<w { for i in 0..<n { ordered[i] += x[r][i] } }
            XCTAssertNotNil(firstMismatch(ordered, want), "W \(w): the rank-order sum differs here, so the check has teeth")
        }
    }

    /// Otherwise it sums the W copies in rank order 0, 1, …, W−1, on every rank.
    func testSmallAllReduceSumsInRankOrderOnEveryRank() {
        let w = 6, n = 999
        let x = inputs(w, n)
        var want = x[0]
        for r in 1..<w { for i in 0..<n { want[i] += x[r][i] } }
        for segment in [64, 4096] {
            let got = reduce(x, segmentBytes: segment, small: 64 << 10)
            for r in 0..<w { XCTAssertNil(firstMismatch(got[r], want), "rank \(r), segment \(segment)") }
        }
    }
}
