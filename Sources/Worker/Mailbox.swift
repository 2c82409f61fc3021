import Control
import Ring
import Wire

/// What the control thread and the compute thread share: orders from the coordinator one way,
/// reports the other way. Everything is read and written under one lock; the compute thread
/// waits on it for orders with a deadline.
final class Mailbox: @unchecked Sendable {
    /// A message for the coordinator.
    enum Outgoing {
        case ready(Ready)
        case stepReport(StepReport)
        case failure(FailureReport)
        case params(ParamsHeader, [UInt8])
        case checkpoint(CheckpointWritten)
        case leave(Leave)
    }

    /// This worker's condition, for heartbeats.
    struct Health {
        var generation: UInt64 = 0
        var step = 0
        var state = "joining"
        var computeSeconds = 0.0
        var commSeconds = 0.0
        var allreduceGBs = 0.0
    }

    let monitor = Monitor()
    private(set) var welcome: Welcome?
    private(set) var refusal: String?
    private(set) var assignment: Assignment?
    private(set) var lease: Lease?
    private(set) var stop: String?
    private(set) var controlError: String?
    private var outbox: [Outgoing] = []
    var health = Health()

    // Control thread → compute thread.
    func deliver(welcome w: Welcome) { monitor.withLock { welcome = w; monitor.broadcast() } }
    func deliver(refusal r: String) { monitor.withLock { refusal = r; monitor.broadcast() } }
    func deliver(assignment a: Assignment) { monitor.withLock { assignment = a; monitor.broadcast() } }
    func deliver(lease l: Lease) {
        monitor.withLock {
            if l.generation == assignment?.generation, l.leaseEnd >= (lease?.leaseEnd ?? 0) { lease = l }
            monitor.broadcast()
        }
    }
    func deliver(stop s: String) { monitor.withLock { if stop == nil { stop = s }; monitor.broadcast() } }
    func deliver(controlError e: String) { monitor.withLock { controlError = e; monitor.broadcast() } }

    // Compute thread → control thread.
    func post(_ m: Outgoing) { monitor.withLock { outbox.append(m) } }
    func takeOutbox() -> [Outgoing] {
        monitor.withLock {
            let out = outbox
            outbox.removeAll(keepingCapacity: true)
            return out
        }
    }
    var outboxIsEmpty: Bool { monitor.withLock { outbox.isEmpty } }
    func setHealth(_ body: (inout Health) -> Void) { monitor.withLock { body(&health) } }
    func readHealth() -> Health { monitor.withLock { health } }

    /// Waits until `ready(self)` holds (checked under the lock) or `deadline`; returns whether it holds.
    func wait(until deadline: Deadline, _ ready: (Mailbox) -> Bool) -> Bool {
        monitor.withLock {
            while !ready(self) {
                if !monitor.wait(until: deadline) { return ready(self) }
            }
            return true
        }
    }

    /// The lease end for `generation` (the assignment's until a lease extends it).
    func leaseEnd(for generation: UInt64) -> Int? {
        guard let a = assignment, a.generation == generation else { return nil }
        if let l = lease, l.generation == generation { return max(l.leaseEnd, a.leaseEnd) }
        return a.leaseEnd
    }

    /// Checkpoint steps of `generation` (the newest word from the coordinator).
    func checkpointSteps(for generation: UInt64) -> [Int] {
        if let l = lease, l.generation == generation { return l.checkpointSteps }
        if let a = assignment, a.generation == generation { return a.checkpointSteps }
        return []
    }
}
