import Basics
import Wire

/// The stretch of a wait spent polling (and yielding the CPU) before sleeping, as long as
/// `RingOptions.spinMicroseconds`; it opens at the first poll that finds nothing.
struct SpinWindow {
    private let nanoseconds: UInt64
    private var closesAt: UInt64 = 0

    init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// Whether to poll again rather than sleep.
    @inline(__always)
    mutating func isOpen() -> Bool {
        guard nanoseconds > 0 else { return false }
        let now = Deadline.now().nanoseconds
        if closesAt == 0 { closesAt = now &+ nanoseconds }
        return now < closesAt
    }
}
