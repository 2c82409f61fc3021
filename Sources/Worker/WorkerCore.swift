import Control

/// A message a worker sends to the coordinator.
public enum WorkerMessage: Sendable, Equatable {
    case register(WorkerHello)
    case ready(Ready)
    case bound(Bound)
    case heartbeat(Heartbeat)
    case failure(FailureReport)
    case checkpointWritten(CheckpointWritten)
    case checkpointFailed(CheckpointFailed)
    case leave(Leave)
}

/// A worker's decisions, as a pure state machine (no I/O, no clock, no logging): events in,
/// directives out, time as a parameter. The shell — a control thread that owns the socket to the
/// coordinator and a compute thread that owns the dataset, the ring and the parameters — feeds it
/// events and carries out what it returns; `WorkerCoreTests` drive it without sockets.
///
/// The compute thread asks `nextTask()` what to do whenever it is idle, and reports how each
/// task went. Its stages, and the legal moves between them:
///
///     registering ─welcome→ openingData ─onDataOpened→ standby
///     standby ─assignment→ preparing ─onPrepared→ fenced ─go→ joining ─onJoined→ training
///     training ─lease→ stepping ─onTrained→ training (or standby when the last step is done)
///     preparing / fenced / joining / stepping ─failure→ standby (a `FailureReport` is sent)
///     any stage ─a newer assignment→ preparing (the shell leaves the old ring first)
///     any stage ─stop, refusal (registering, standby), lost coordinator→ exited
///
/// Generations: an assignment names one; a newer one supersedes the ring in progress (the
/// shell's collectives are abandoned at once) and messages of older generations are ignored.
/// The coordinator is lost when nothing has been heard from it for `silenceLimit` seconds (it
/// answers every heartbeat); the fence (waiting for `go`) gives up after `fenceTimeout`.
public struct WorkerCore: Sendable {
    /// Fixed inputs.
    public struct Settings: Sendable, Equatable {
        /// The coordinator's endpoint (named in messages).
        public var coordinator: String
        /// Give up after this long without word from the coordinator, seconds.
        public var silenceLimit = 60.0
        /// After `Bound`, report a failure of the generation if `go` has not come within this long.
        public var fenceTimeout = 300.0

        public init(coordinator: String) { self.coordinator = coordinator }
    }

    /// Where the compute thread is (see the type's documentation for the moves).
    public enum Stage: Sendable, Equatable {
        case registering
        case openingData
        case standby
        case preparing(UInt64)
        case fenced(UInt64, since: Double)
        case joining(UInt64)
        case training(UInt64, step: Int)
        case stepping(UInt64, step: Int)
        /// Waiting at a lease end for checkpoints (asked for, or still being written) to be reported.
        case checkpointing(UInt64, step: Int)
        case exited(Int32)
    }

    /// Work for the compute thread.
    public enum Task: Sendable, Equatable {
        /// Parse the welcome's config, open the dataset, report `onDataOpened`.
        case openData(Welcome)
        /// Leave the ring in progress if any; load the assignment's checkpoint (or initialise the
        /// parameters), bind the ring endpoint again; report `onPrepared` or `onPrepareFailed`.
        case prepare(Assignment)
        /// Join the ring of the assignment; report `onJoined` or `onJoinFailed`.
        case join(Assignment)
        /// Run global steps `from ..< to` of `generation`, calling `onStep` after each and asking
        /// `isSuperseded` before each; then report `onTrained` or `onTrainFailed`.
        case train(generation: UInt64, from: Int, to: Int)
        /// Between leases (no step to run): write a checkpoint of the state after global step
        /// `step` (rank 0, asked for one), wait for every write in flight and report them; then
        /// report `onCheckpointsFlushed`.
        case checkpoint(generation: UInt64, step: Int)
        /// Between leases: wait for the checkpoint writes in flight and report them; then report
        /// `onCheckpointsFlushed`.
        case awaitCheckpoints(generation: UInt64)
        /// Leave the ring in progress if any, and exit with `code`; `reason` is logged.
        case exit(code: Int32, reason: String)
    }

    /// What the shell must do, on the thread that delivered the event.
    public enum Directive: Sendable, Equatable {
        /// A message for the coordinator (the control thread sends it).
        case send(WorkerMessage)
        /// Break the current generation's collectives out of their waits.
        case abandonRing
        /// Write a checkpoint of the step just finished (rank 0).
        case saveCheckpoint(step: Int, phaseEnd: Bool)
        /// Report the step just finished to the coordinator (rank 0).
        case reportStep(generation: UInt64)
        /// Upload the parameters of `step` for evaluation (rank 0).
        case upload(step: Int, phase: Int, final: Bool)
        /// Leave the current ring: finish the checkpoint writer, close the reducer and the group.
        case leaveRing
        /// Something worth a log line.
        case log(String)
    }

    /// What a step's timing looked like, for the heartbeats' averages.
    public struct StepTiming: Sendable, Equatable {
        public var computeSeconds: Double
        public var commSeconds: Double
        /// Bytes all-reduced and the seconds it took.
        public var reducedBytes: Int
        public var reduceSeconds: Double

        public init(computeSeconds: Double = 0, commSeconds: Double = 0, reducedBytes: Int = 0, reduceSeconds: Double = 0) {
            self.computeSeconds = computeSeconds
            self.commSeconds = commSeconds
            self.reducedBytes = reducedBytes
            self.reduceSeconds = reduceSeconds
        }
    }

    /// The job's shape as the worker's plan resolves it against its dataset.
    public struct Plan: Sendable, Equatable {
        /// Global step at which each phase starts.
        public var phaseStarts: [Int]
        public var totalSteps: Int

        public init(phaseStarts: [Int], totalSteps: Int) {
            self.phaseStarts = phaseStarts
            self.totalSteps = totalSteps
        }

        /// The phase of global step `s` (0-based; the step about to run).
        public func phase(ofStep s: Int) -> Int {
            var p = 0
            for (i, start) in phaseStarts.enumerated() where s >= start { p = i }
            return p
        }

        /// Global step at which phase `p` ends.
        public func end(ofPhase p: Int) -> Int { p + 1 < phaseStarts.count ? phaseStarts[p + 1] : totalSteps }
    }

    public let settings: Settings
    public internal(set) var stage: Stage = .registering
    public private(set) var welcome: Welcome?
    public internal(set) var plan: Plan?
    /// The newest assignment.
    public private(set) var assignment: Assignment?
    /// The lease end granted for `assignment`'s generation (the assignment's own until extended).
    public private(set) var leaseEnd = 0
    /// The newest generation told to connect.
    public private(set) var goGeneration: UInt64 = 0
    /// The generation the compute thread last ran to its end (or gave up on).
    public internal(set) var doneGeneration: UInt64 = 0
    /// Why the worker stops, once told (a stop message or a signal).
    public private(set) var stopReason: String?
    public private(set) var refusal: String?
    /// Why the coordinator counts as lost (silence, or the control connection failed).
    public private(set) var lost: String?
    /// Why the worker cannot go on at all (its config does not match the coordinator's).
    public internal(set) var fatal: String?
    /// What the heartbeats report.
    public internal(set) var health = Heartbeat(workerID: 0, generation: 0, step: 0, state: .joining,
                                                computeSeconds: 0, commSeconds: 0, allreduceGBs: 0)
    var checkpointRequest: UInt64?
    var lastHeard: Double
    var lastHeartbeat = -Double.infinity
    var heartbeatPeriod = 1.0
    /// Checkpoints directed (rank 0) whose outcome has not come back yet.
    var savesInFlight = 0
    /// Step timings summed since the heartbeat averages were last updated.
    var timing = (sum: StepTiming(), steps: 0)

    /// A worker that starts registering at `now`.
    public init(settings: Settings, now: Double) {
        self.settings = settings
        lastHeard = now
    }

    /// The control connection is up: register with `hello`.
    public mutating func onStart(_ hello: WorkerHello, now: Double) -> [Directive] {
        lastHeard = now
        return [.send(.register(hello))]
    }

    // MARK: messages from the coordinator (control thread)

    /// The coordinator accepted the registration.
    public mutating func onWelcome(_ w: Welcome, now: Double) -> [Directive] {
        lastHeard = now
        guard welcome == nil else { return [] }
        welcome = w
        health.workerID = w.workerID
        heartbeatPeriod = w.heartbeatSeconds
        return []
    }

    /// The coordinator refused this worker.
    public mutating func onRefusal(_ r: Refusal, now: Double) -> [Directive] {
        lastHeard = now
        if refusal == nil { refusal = r.reason }
        return []
    }

    /// A place in a ring. A newer generation than the one running abandons its collectives.
    public mutating func onAssignment(_ a: Assignment, now: Double) -> [Directive] {
        lastHeard = now
        let current = assignment?.generation ?? 0
        guard a.generation >= current else { return [] }
        assignment = a
        if a.generation > current {
            leaseEnd = a.leaseEnd
            return [.abandonRing]
        }
        leaseEnd = max(leaseEnd, a.leaseEnd)
        return []
    }

    /// Every member of a generation is bound: connect.
    public mutating func onGo(_ g: Go, now: Double) -> [Directive] {
        lastHeard = now
        goGeneration = max(goGeneration, g.generation)
        return []
    }

    /// A longer lease (or the current one again, in answer to a heartbeat).
    public mutating func onLease(_ l: Lease, now: Double) -> [Directive] {
        lastHeard = now
        if l.generation == assignment?.generation { leaseEnd = max(leaseEnd, l.leaseEnd) }
        return []
    }

    /// Rank 0 is asked for a checkpoint after the step it is running.
    public mutating func onCheckpointNow(_ c: CheckpointNow, now: Double) -> [Directive] {
        lastHeard = now
        checkpointRequest = c.generation
        return []
    }

    /// The coordinator orders a stop.
    public mutating func onStop(_ s: Stop, now: Double) -> [Directive] {
        lastHeard = now
        return stop(s.reason)
    }

    /// A message that could not be read still shows the coordinator is alive.
    public mutating func onUnreadable(now: Double) { lastHeard = now }

    /// The worker is asked to leave (a signal): it tells the coordinator and stops after the
    /// current step.
    public mutating func onStopRequested(_ reason: String) -> [Directive] {
        var out: [Directive] = []
        if let w = welcome, stopReason == nil { out.append(.send(.leave(Leave(workerID: w.workerID, reason: reason)))) }
        return out + stop(reason)
    }

    private mutating func stop(_ reason: String) -> [Directive] {
        if stopReason == nil { stopReason = reason }
        return [.abandonRing]
    }

    /// The control connection failed.
    public mutating func onControlError(_ text: String) -> [Directive] {
        if lost == nil { lost = "control connection to \(settings.coordinator): \(text)" }
        return []
    }

    /// Time passes (control thread): a heartbeat when one is due; the coordinator is lost after
    /// `silenceLimit` seconds without a word.
    public mutating func onTick(now: Double) -> [Directive] {
        var out: [Directive] = []
        if welcome != nil, now - lastHeartbeat >= heartbeatPeriod {
            lastHeartbeat = now
            out.append(.send(.heartbeat(health)))
        }
        if case .fenced(let g, let since) = stage, now - since > settings.fenceTimeout, !isSuperseded(g) {
            let reason = "no go for generation \(g) within \(Int(settings.fenceTimeout)) s of binding"
            out += [.log(reason)] + fail(g, step: assignment?.startStep ?? 0, reason: reason)
        }
        if lost == nil, stopReason == nil, now - lastHeard > settings.silenceLimit {
            let limit = Int(settings.silenceLimit)
            lost = welcome == nil
                ? "no answer from the coordinator at \(settings.coordinator) within \(limit) s — is it running, reachable from here, "
                    + "and does this worker hold the job's worker key (--keys; a coordinator refuses other keys, and an --insecure one these)?"
                : "no word from the coordinator at \(settings.coordinator) for \(limit) s"
        }
        return out
    }

    // MARK: the compute thread

    /// Whether the generation `g` is no longer wanted (a newer assignment or a stop); asked
    /// before every step.
    public func isSuperseded(_ g: UInt64) -> Bool {
        stopReason != nil || (assignment?.generation ?? 0) > g
    }

    /// The idle compute thread's next task (nil: nothing yet; ask again after a wake-up).
    public mutating func nextTask() -> Task? {
        switch stage {
        case .openingData, .preparing, .joining, .stepping, .checkpointing, .exited:
            return nil  // a task is out, or the worker has ended
        case .registering, .standby:
            if let r = refusal { return exit(2, "refused: \(r)") }
        case .fenced, .training:
            break
        }
        if let e = lost ?? fatal { return exit(1, "error: \(e)") }
        if let s = stopReason { return exit(0, stage == .registering ? "stopped: \(s)" : "stopping: \(s)") }
        switch stage {
        case .registering:
            guard let w = welcome else { return nil }
            stage = .openingData
            return .openData(w)
        case .standby:
            return prepareNewer()
        case .fenced(let g, _):
            if (assignment?.generation ?? 0) > g { return prepareNewer() }
            if goGeneration >= g, let a = assignment {
                stage = .joining(g)
                health.state = .connecting
                return .join(a)
            }
            return nil
        case .training(let g, let step):
            if (assignment?.generation ?? 0) > g { return prepareNewer() }
            guard let a = assignment, step < a.totalSteps else { return nil }
            let end = min(leaseEnd, a.totalSteps)
            if end > step {
                stage = .stepping(g, step: step)
                return .train(generation: g, from: step, to: end)
            }
            // Waiting for a lease: a checkpoint asked for now cannot wait for the next step (a
            // stopping coordinator extends no lease), nor can a write in flight wait to be reported.
            if a.rank == 0, !a.checkpoint.directory.isEmpty, checkpointRequest == g {
                checkpointRequest = nil
                savesInFlight += 1
                stage = .checkpointing(g, step: step)
                return .checkpoint(generation: g, step: step)
            }
            if savesInFlight > 0 {
                stage = .checkpointing(g, step: step)
                return .awaitCheckpoints(generation: g)
            }
            return nil
        case .openingData, .preparing, .joining, .stepping, .checkpointing, .exited:
            return nil
        }
    }

    /// Everything `nextTask` reads: the compute thread needs waking only when this changed.
    public struct TaskInputs: Equatable, Sendable {
        let stage: Stage
        let welcomed: Bool
        let refusal: String?, lost: String?, fatal: String?, stopReason: String?
        let assignment: UInt64?
        let leaseEnd: Int
        let goGeneration: UInt64
        let doneGeneration: UInt64
        let checkpointRequest: UInt64?
        let savesInFlight: Int
    }

    /// What `nextTask` would decide from, now.
    public var taskInputs: TaskInputs {
        TaskInputs(stage: stage, welcomed: welcome != nil, refusal: refusal, lost: lost, fatal: fatal, stopReason: stopReason,
                   assignment: assignment?.generation,
                   leaseEnd: leaseEnd, goGeneration: goGeneration, doneGeneration: doneGeneration,
                   checkpointRequest: checkpointRequest, savesInFlight: savesInFlight)
    }

    /// Prepares the newest assignment if it is newer than the last generation run.
    private mutating func prepareNewer() -> Task? {
        guard let a = assignment, a.generation > doneGeneration else { return nil }
        stage = .preparing(a.generation)
        health.generation = a.generation
        health.step = a.startStep
        health.state = .connecting
        return .prepare(a)
    }

    mutating func exit(_ code: Int32, _ reason: String) -> Task {
        stage = .exited(code)
        return .exit(code: code, reason: reason)
    }
}
