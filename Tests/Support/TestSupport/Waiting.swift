import Basics
#if canImport(Glibc)
import Glibc
#endif

/// Evaluates `condition` every `interval` seconds until it holds (returns true) or `deadline`
/// passes (returns false): for a test that waits for an observable state — a file appears, a
/// status reports a step, a process exits — never for a fixed time.
@discardableResult
public func waitUntil(deadline: Deadline, interval: Double = 0.01, _ condition: () throws -> Bool) rethrows -> Bool {
    while true {
        if try condition() { return true }
        if deadline.hasPassed { return false }
        usleep(UInt32(interval * 1e6))
    }
}
