#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in seconds (CLOCK_MONOTONIC), for step timing and timeouts.
public enum MonotonicClock {
    @inlinable
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
