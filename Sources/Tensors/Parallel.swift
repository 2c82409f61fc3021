import Dispatch

/// Splits element-wise work across a few threads.
///
/// One process-wide setting, `threads`, chosen once at start-up (it follows the worker's
/// `--threads`); with several worker processes on one host it is 1, like OpenBLAS's.
public enum Parallel {
    nonisolated(unsafe) private static var _threads = 1

    /// Threads used by `forChunks`. Set once before work starts.
    public static var threads: Int {
        get { _threads }
        set { _threads = max(1, newValue) }
    }

    /// Calls `body(lo, hi)` on disjoint ranges covering `0..<count`, in parallel when the work is
    /// large enough (`count >= minPerThread * 2`). Ranges are aligned to `align` elements.
    @inlinable
    public static func forChunks(
        _ count: Int, minPerThread: Int = 1 << 15, align: Int = 16,
        _ body: (Int, Int) -> Void
    ) {
        let t = min(threads, count / max(minPerThread, 1))
        if t <= 1 {
            body(0, count)
            return
        }
        var per = (count + t - 1) / t
        per = (per + align - 1) / align * align
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: t) { i in
                let lo = min(i * per, count)
                let hi = min(lo + per, count)
                if lo < hi { body(lo, hi) }
            }
        }
    }
}
