import Foundation
import Ring
import XCTest

/// Bucketed all-reduce of a gradient slab while "backward" still runs on the caller's thread.
final class BucketTests: XCTestCase {
    func testBucketsMatchOneAllReduceOfTheWholeSlab() {
        let w = 3, n = 10_000
        // Layers of a slab, in forward order; backward submits them in reverse.
        let layers = [0..<1200, 1200..<1201, 1201..<5000, 5000..<5000, 5000..<9999, 9999..<10_000]
        let out = Shared([[Float]](repeating: [], count: w))
        let errors = runRing(w) { r, g in
            var slab = rankInput(r, n)
            try slab.withUnsafeMutableBufferPointer { buf in
                let reducer = try BucketAllReducer(group: g, buffer: buf, bucketBytes: 8 << 10)
                defer { reducer.close() }
                for step in 0..<2 {
                    if step == 1 { for i in 0..<n { buf[i] = Float(r + 1) * Float(1 + (i + r) % 7) } }
                    for layer in layers.reversed() {
                        usleep(1000)  // the backward pass of this layer
                        try reducer.submit(layer)
                    }
                    try reducer.finish()
                }
                // Ranges that do not adjoin flush the pending bucket first.
                try reducer.submit(0..<10)
                try reducer.submit(20..<30)
                try reducer.submit(10..<20)
                try reducer.finish()
            }
            out.values[r] = slab
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        let want = (0..<n).map { i -> Float in (0..<30).contains(i) ? Float(w) * expectedSum(w, i) : expectedSum(w, i) }
        for r in 0..<w { XCTAssertNil(firstMismatch(out.values[r], want), "rank \(r)") }
    }

    func testAFailedBucketIsReportedByFinish() {
        let errors = runRing(2, options: .with(segmentBytes: 64, timeout: 0.3)) { r, g in
            var slab = [Float](repeating: 1, count: 100)
            try slab.withUnsafeMutableBufferPointer { buf in
                let reducer = try BucketAllReducer(group: g, buffer: buf, bucketBytes: 64)
                defer { reducer.close() }
                if r == 0 { try reducer.submit(0..<100) }  // rank 1 never takes part
                try reducer.finish()
            }
        }
        guard case .timedOut? = errors[0] else { return XCTFail("\(String(describing: errors[0]))") }
        XCTAssertNil(errors[1])
    }
}
