#if canImport(Glibc)
import Glibc
#endif

/// Wakes threads waiting for "something changed" without holding what changed: an event count.
/// A waiter takes a `ticket`, looks at the state it cares about (under that state's own lock),
/// and if nothing is ready waits until the bell rang after its ticket — so a ring between its
/// look and its wait is never lost. Every wait has a deadline.
public final class Doorbell: @unchecked Sendable {  // all state is behind `monitor`
    private let monitor = Monitor()
    private var rings: UInt64 = 0

    public init() {}

    /// The current count; pass it to `wait(after:until:)`.
    public func ticket() -> UInt64 { monitor.withLock { rings } }

    /// Wakes every waiter.
    public func ring() {
        monitor.withLock {
            rings &+= 1
            monitor.broadcast()
        }
    }

    /// Waits until the bell rang after `ticket` or until `deadline`; true when it rang.
    @discardableResult
    public func wait(after ticket: UInt64, until deadline: Deadline) -> Bool {
        monitor.withLock {
            while rings == ticket {
                if !monitor.wait(until: deadline) { return rings != ticket }
            }
            return true
        }
    }
}
