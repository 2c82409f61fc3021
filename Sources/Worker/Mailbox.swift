import Basics
import Control
import Trainer

/// What the control thread and the compute thread share: the worker's core, the messages waiting
/// for the coordinator, and the hook that breaks a ring out of its waits — all behind one
/// `Locked` value, so no field can be read without it. A `Doorbell` wakes the compute thread when an
/// event may have given it work; it holds no state of its own.
final class Mailbox: Sendable {
    /// A message for the coordinator, as the control thread sends it.
    enum Outgoing: Sendable {
        case message(WorkerMessage)
        /// A finished step, formatted into a `StepReport` by the control thread (off the step's path).
        case stepOutcome(StepOutcome, generation: UInt64)
        /// Parameters for evaluation: a header, then the bytes in chunks.
        case params(ParamsHeader, [UInt8])
    }

    private struct Shared {
        var core: WorkerCore
        var outbox: [Outgoing] = []
        /// Breaks the current generation's collectives out of their waits (set by the compute
        /// thread while it holds a ring; called by whichever thread delivers a newer assignment
        /// or a stop).
        var abandon: (@Sendable () -> Void)?
    }

    private let shared: Locked<Shared>
    private let bell = Doorbell()
    private let log: @Sendable (String) -> Void

    init(core: WorkerCore, log: @escaping @Sendable (String) -> Void) {
        shared = Locked(Shared(core: core))
        self.log = log
    }

    /// Runs an event on the core and carries out what can be done from any thread: messages go
    /// to the outbox, the ring is abandoned, log lines are written, and the compute thread is
    /// woken if the event changed what its next task depends on.
    /// Returns the directives only the compute thread can carry out (in order).
    @discardableResult
    func handle(_ event: (inout WorkerCore) -> [WorkerCore.Directive]) -> [WorkerCore.Directive] {
        var abandon: (@Sendable () -> Void)?
        var lines: [String] = []
        var changed = false
        let rest = shared.withLock { s -> [WorkerCore.Directive] in
            let before = s.core.taskInputs
            var rest: [WorkerCore.Directive] = []
            defer { changed = s.core.taskInputs != before }
            for d in event(&s.core) {
                switch d {
                case .send(let m): s.outbox.append(.message(m))
                case .abandonRing: abandon = s.abandon
                case .log(let text): lines.append(text)
                default: rest.append(d)
                }
            }
            return rest
        }
        abandon?()
        for l in lines { log(l) }
        if changed { bell.ring() }
        return rest
    }

    /// Reads the core.
    func read<T>(_ body: (WorkerCore) -> T) -> T { shared.withLock { body($0.core) } }

    /// Queues a message that carries data the core does not hold (a step outcome, parameters).
    func post(_ m: Outgoing) { shared.withLock { $0.outbox.append(m) } }

    /// Takes every queued message, oldest first.
    func takeOutbox() -> [Outgoing] {
        shared.withLock { s in
            let out = s.outbox
            s.outbox.removeAll(keepingCapacity: true)
            return out
        }
    }

    var outboxIsEmpty: Bool { shared.withLock { $0.outbox.isEmpty } }

    /// Sets (or clears) what breaks the current generation's collectives.
    func setAbandon(_ hook: (@Sendable () -> Void)?) { shared.withLock { $0.abandon = hook } }

    /// The compute thread's next task: asks the core, and while it has none waits for an event
    /// that may give it one, each wait at most `slice` seconds.
    func nextTask(slice: Double) -> WorkerCore.Task {
        while true {
            let ticket = bell.ticket()
            if let task = shared.withLock({ $0.core.nextTask() }) { return task }
            bell.wait(after: ticket, until: .after(seconds: slice))
        }
    }
}
