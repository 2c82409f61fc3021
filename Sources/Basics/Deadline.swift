#if canImport(Glibc)
import Glibc
#endif

/// A point in time on the monotonic clock, for bounding waits.
///
/// Every blocking wait in Wire and Ring takes a `Deadline`, never an open-ended timeout.
public struct Deadline: Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds on `CLOCK_MONOTONIC`.
    public let nanoseconds: UInt64

    /// A deadline at `nanoseconds` on the monotonic clock.
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current time.
    @inline(__always)
    public static func now() -> Deadline {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Deadline(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    /// `seconds` from now (negative values mean now).
    @inline(__always)
    public static func after(seconds: Double) -> Deadline {
        let delta = seconds > 0 ? UInt64(min(seconds, 1e9) * 1e9) : 0
        return Deadline(nanoseconds: now().nanoseconds &+ delta)
    }

    /// Whether the deadline is in the past.
    @inline(__always)
    public var hasPassed: Bool { Deadline.now().nanoseconds >= nanoseconds }

    /// Whole milliseconds until the deadline, rounded up, at least 0 and at most `cap`.
    @inline(__always)
    public func remainingMilliseconds(cap: Int = Int(Int32.max)) -> Int {
        let now = Deadline.now().nanoseconds
        if now >= nanoseconds { return 0 }
        let ms = (nanoseconds - now + 999_999) / 1_000_000
        return ms > UInt64(cap) ? cap : Int(ms)
    }

    /// Seconds from `start` to this point.
    public func seconds(since start: Deadline) -> Double {
        Double(Int64(bitPattern: nanoseconds &- start.nanoseconds)) / 1e9
    }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.nanoseconds < b.nanoseconds }

    public var description: String { "Deadline(\(nanoseconds) ns)" }
}
