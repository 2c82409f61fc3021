import Tensors
import Control
import Trainer
import Wire
import Basics

/// What the control thread and the compute thread share: orders from the coordinator one way,
/// reports the other way. Everything is read and written under one lock; the compute thread
/// waits on it for orders with a deadline.
final class Mailbox: @unchecked Sendable {
    /// A message for the coordinator.
    enum Outgoing {
        case ready(Ready)
        case bound(Bound)
        case stepReport(StepReport)
        /// A finished step, formatted into a `StepReport` by the control thread.
        case stepOutcome(StepOutcome, generation: UInt64)
        case failure(FailureReport)
        case params(ParamsHeader, [UInt8])
        case checkpoint(CheckpointWritten)
        case leave(Leave)
    }

    /// This worker's condition, for heartbeats.
    struct Health {
        var generation: UInt64 = 0
        var step = 0
        var state = WorkerState.joining
        var computeSeconds = 0.0
        var commSeconds = 0.0
        var allreduceGBs = 0.0
    }

    let monitor = Monitor()
    private(set) var welcome: Welcome?
    private(set) var refusal: String?
    private(set) var assignment: Assignment?
    private(set) var lease: Lease?
    /// The newest generation told to connect.
    private(set) var goGeneration: UInt64 = 0
    private var checkpointRequest: CheckpointNow?
    private(set) var stop: String?
    private(set) var controlError: String?
    private var outbox: [Outgoing] = []
    /// Breaks the current generation's collectives out of their waits (a newer generation or a
    /// stop made them pointless). Set by the compute thread; called on the control thread.
    private var abandonCurrent: (@Sendable () -> Void)?
    var health = Health()

    // Control thread → compute thread.
    func deliver(welcome w: Welcome) { monitor.withLock { welcome = w; monitor.broadcast() } }
    func deliver(refusal r: String) { monitor.withLock { refusal = r; monitor.broadcast() } }
    func deliver(assignment a: Assignment) {
        let hook = monitor.withLock { () -> (@Sendable () -> Void)? in
            let newer = a.generation > (assignment?.generation ?? 0)
            assignment = a
            monitor.broadcast()
            return newer ? abandonCurrent : nil
        }
        hook?()
    }

    /// Sets (or clears) what breaks the current generation's collectives.
    func setAbandon(_ hook: (@Sendable () -> Void)?) { monitor.withLock { abandonCurrent = hook } }
    func deliver(lease l: Lease) {
        monitor.withLock {
            if l.generation == assignment?.generation, lease?.generation != l.generation || l.leaseEnd >= lease!.leaseEnd { lease = l }
            monitor.broadcast()
        }
    }
    func deliver(checkpointNow c: CheckpointNow) { monitor.withLock { checkpointRequest = c } }
    func deliver(go g: Go) { monitor.withLock { goGeneration = max(goGeneration, g.generation); monitor.broadcast() } }
    func deliver(stop s: String) {
        let hook = monitor.withLock { () -> (@Sendable () -> Void)? in
            if stop == nil { stop = s }
            monitor.broadcast()
            return abandonCurrent
        }
        hook?()
    }
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

    /// Takes a pending request for a checkpoint of `generation` (true once per request).
    func takeCheckpointRequest(for generation: UInt64) -> Bool {
        monitor.withLock {
            guard let r = checkpointRequest, r.generation == generation else { return false }
            checkpointRequest = nil
            return true
        }
    }
}
