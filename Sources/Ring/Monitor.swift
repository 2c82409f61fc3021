import Tensors
import Wire

extension Monitor {
    /// With the lock held: waits for a `broadcast` or until `deadline`; false once it passed.
    public func wait(until deadline: Deadline) -> Bool { wait(untilMonotonicNanoseconds: deadline.nanoseconds) }
}
