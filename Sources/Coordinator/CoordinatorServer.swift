import Basics
import Checkpoints
import Control
import Features
import Foundation
import Job
import JobConfig
import Model
import Synchronization
import Tensors
import Wire

/// How the coordinator runs.
public struct CoordinatorOptions: Sendable {
    public var config: JobConfig
    /// Control endpoint to bind, e.g. tcp://0.0.0.0:29500.
    public var listen: String
    public var minWorkers: Int
    public var workers: Int
    public var runDir: String
    public var overwrite = false
    /// Dataset directory (default: the config's data.path).
    public var data: String?
    /// Stop after this many global steps.
    public var maxSteps: Int?
    public var heartbeatTimeout = 10.0
    public var evalSamples: Int?
    public var verbose = true
    /// Checkpoint directory (default: <run dir>/checkpoints); nil after `noCheckpoints`.
    public var checkpointDir: String?
    public var noCheckpoints = false
    /// Checkpoint every this many steps (0: only at phase ends and on the time schedule).
    public var checkpointEvery = 100
    /// And at least every this many minutes (0: never by time).
    public var checkpointMinutes = 30.0
    public var keepCheckpoints = 3
    /// Stop the job after this many checkpoints in a row could not be written (0: never).
    public var maxCheckpointFailures = 2
    /// `auto` (the newest checkpoint that verifies, or a fresh start when there is none) or a path.
    public var resume: String?
    /// Resume even when the checkpoint's config hash differs from the config's.
    public var allowConfigChange = false
    /// The control socket's security: CURVE with the job's coordinator keys (workers and status
    /// clients admitted by their public keys), or `--insecure`.
    public var security = ControlSecurity.insecure

    public init(config: JobConfig, listen: String, minWorkers: Int, workers: Int, runDir: String) {
        self.config = config
        self.listen = listen
        self.minWorkers = minWorkers
        self.workers = workers
        self.runDir = runDir
    }
}

/// A stop asked for from another thread (a signal handler's): raised there, seen by the control loop.
public final class StopRequest: Sendable {
    private let raised = Atomic<Bool>(false)

    public init() {}

    /// Asks for the stop (from any thread).
    public func raise() { raised.store(true, ordering: .releasing) }

    /// Whether a stop was asked for.
    public var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// The coordinator daemon's shell: owns the ROUTER socket, the clock, the run directory and the
/// evaluation thread, and carries out what `CoordinatorCore` decides. It is not on the per-step
/// critical path: workers run leased steps and report asynchronously.
///
/// Not Sendable: everything here belongs to the thread running `serve()`. Other threads reach it
/// through two Sendable doors only: `stopRequest` (signals) and `handoff` (the evaluation thread,
/// which gets its inputs as a Sendable `EvaluationJob` and hands back an `EvaluationOutcome`).
public final class CoordinatorServer {
    let options: CoordinatorOptions
    var core: CoordinatorCore
    let dataset: FeatureDataset
    let plan: CurriculumPlan
    let run: RunDirectory
    let evaluator: Evaluator
    let context: ZmqContext
    /// Admits the job's worker and status keys (nil when insecure); stopped before the context ends.
    let authenticator: ZapHandler?
    /// The current generation's direct-link key (`linkKey(for:)`).
    var currentLinkKey: (UInt64, String)?
    let channel: ControlSocket
    let started = MonotonicClock.now()
    /// The socket identity of each connection (registration) and each welcomed worker.
    var connections: [String: [UInt8]] = [:]
    var identities: [UInt64: [UInt8]] = [:]
    var uploads = ParamsAssembler()
    var pendingEvaluations: [Int: (phase: Int, final: Bool)] = [:]
    var evaluating = false
    /// Finished evaluations, from the evaluation thread.
    let handoff = EvaluationHandoff()
    var reports: [EvalReport] = []
    var events: [StatusReport.Event] = []
    var smoothed: [String: Double] = [:]
    var smoothedRate: Double?
    let resumeNotes: [String]
    let resumeStep: Int?
    var lostMetrics: String?
    /// The step of the last line in metrics.jsonl.
    var metricsStep = 0
    /// Raise to stop the job (from a signal handler's thread).
    public let stopRequest = StopRequest()
    /// The largest parameter upload taken: this model's parameters and EMA teacher as float32,
    /// plus room for the safetensors header (a larger one would only allocate memory for nothing).
    let maxUploadBytes: Int

    public init(options: CoordinatorOptions) throws {
        self.options = options
        let config = options.config
        dataset = try DatasetSource.open(config: config, path: options.data) { note in
            if options.verbose { fputs("proclip coordinator: \(note)\n", stderr) }
        }
        let map = try DataCheck.variantMap(config: config, dataset: dataset)
        plan = try CurriculumPlan(config: config, trainCount: dataset.indices(of: .train).count)
        evaluator = try Evaluator(dataset: dataset, config: config, variantMap: map, maxSamples: options.evalSamples)
        let layout = ParameterLayout(config.model)
        maxUploadBytes = 4 * (layout.count + layout.range(of: .image).count) + (1 << 20)
        let total = min(plan.totalSteps, options.maxSteps ?? Int.max)
        var settings = CoordinatorCore.Settings(minWorkers: options.minWorkers, workers: options.workers)
        settings.heartbeatTimeout = options.heartbeatTimeout
        let checkpointDir = options.noCheckpoints ? "" : absolutePath(options.checkpointDir ?? options.runDir + "/checkpoints")
        settings.checkpoint = CheckpointPolicy(directory: checkpointDir, every: options.checkpointEvery, keep: options.keepCheckpoints)
        settings.maxCheckpointFailures = options.maxCheckpointFailures
        settings.checkpointSeconds = options.checkpointMinutes * 60
        core = CoordinatorCore(settings: settings, phaseStarts: plan.phases.map(\.firstGlobalStep),
                               phaseNames: plan.phases.map(\.config.name), totalSteps: total,
                               config: config.text, configHash: config.hash, manifestHash: dataset.manifest.contentHash)
        var resumeNotes: [String] = []
        var resumeStep: Int?
        var resumeMetrics: String?
        if let resume = options.resume {
            let chosen = try CoordinatorServer.chooseCheckpoint(resume, directory: checkpointDir, config: config,
                                                                manifestHash: dataset.manifest.contentHash,
                                                                allowConfigChange: options.allowConfigChange)
            resumeNotes = chosen.notes
            if let (step, path) = chosen.checkpoint {
                core.resume(from: step, path: path)
                resumeStep = step
                resumeMetrics = chosen.metricsLine
            }
        }
        self.resumeNotes = resumeNotes
        self.resumeStep = resumeStep
        _ = resumeMetrics
        context = try ZmqContext(ioThreads: 1)
        authenticator = try options.security.coordinatorAuthenticator(context: context)
        let socket = try context.socket(.router)
        try options.security.configureServer(socket)
        try socket.set(.linger(milliseconds: 1000))
        try socket.set(.routerMandatory(true))
        try socket.set(.maxMessageSize(ControlLimits.paramsChunk + 4096))
        do {
            try socket.bind(options.listen)
        } catch {
            socket.close()
            authenticator?.stop()
            context.terminate()
            throw TrainingError("cannot listen on \(options.listen): \(error) — is another coordinator running there? (choose another --listen port)")
        }
        channel = ControlSocket(socket: socket, accepting: ControlLimits.coordinatorAccepts)
        run = try RunDirectory(path: options.runDir, overwrite: options.overwrite, resumeAt: resumeStep)
        try run.saveConfig(config.text)
        if let step = resumeStep {
            // Reports still in flight when the job died never reached metrics.jsonl; the checkpoint
            // carries the line of its own step.
            // Every checkpoint carries the lines since the one before: together they cover the
            // reports the coordinator had not received when the job died.
            var carried: [Substring] = []
            if !checkpointDir.isEmpty, let entries = try? CheckpointDirectory(checkpointDir).entries() {
                for e in entries where e.step < step {
                    if let h = try? CheckpointFile.readHeader(CheckpointDirectory(checkpointDir).file(e.name)) {
                        carried += (h.meta.extra["metrics"] ?? "").split(separator: "\n")
                    }
                }
            }
            carried += (resumeMetrics ?? "").split(separator: "\n")
            var last = run.lastMetricsStep ?? 0
            for line in carried.sorted(by: { (RunDirectory.step(of: $0) ?? 0) < (RunDirectory.step(of: $1) ?? 0) }) {
                if let s = RunDirectory.step(of: line), s == last + 1, s <= step {
                    try run.appendMetrics(String(line))
                    last = s
                }
            }
            if last < step { lostMetrics = "resume: metrics of steps \(last + 1)…\(step) were lost with the interrupted run" }
            metricsStep = last
        }
    }

    /// The endpoint actually bound (a wildcard port resolved).
    public var endpoint: String { (try? channel.socket.lastEndpoint()) ?? options.listen }

    /// Stop the job (from the thread running `serve()`; other threads raise `stopRequest`).
    public func requestStop() { stopRequest.raise() }

    func now() -> Double { MonotonicClock.now() - started }

    /// Runs until the job ends; returns the exit status.
    public func serve() -> Int32 {
        defer {
            channel.socket.close()
            authenticator?.stop()
            context.terminate()
        }
        let baseline = evaluator.baseline()
        reports = [baseline]
        if let step = resumeStep {
            let earlier = run.evalReports(upTo: step).filter { $0.phase != nil }
            reports += earlier
        }
        saveEval()
        for note in resumeNotes { record(note) }
        if let lost = lostMetrics { record(lost) }
        if let step = resumeStep, step >= core.totalSteps, let path = core.checkpoint?.path {
            return finishFromCheckpoint(path, step: step)
        }
        record("coordinator for '\(options.config.name)' on \(endpoint): \(core.totalSteps) steps, \(options.workers) worker(s) (at least \(options.minWorkers)), config \(options.config.hash), data \(dataset.manifest.contentHash)")
        record(EvalTable.line(baseline))
        record(options.security.keys == nil ? ControlSecurity.insecureWarning
               : "security: CURVE; admitting the job's worker key and status key (ZAP), nothing else")
        var stopHandled = false
        var exitCode: Int32?
        while exitCode == nil {
            do {
                if try channel.wait(milliseconds: 50) {
                    while let m = try channel.receive() {
                        if let code = try handle(m) { exitCode = code }
                    }
                }
            } catch {
                record("control socket error: \(error)")
            }
            let t = now()
            var directives: [CoordinatorCore.Directive] = []
            if !stopHandled && stopRequest.isRaised {
                stopHandled = true
                directives += core.onStopRequested(now: t)
            }
            directives += collectEvaluations()
            directives += core.onTick(now: t)
            if let code = execute(directives) { exitCode = code }
        }
        do { try run.flushMetrics() } catch {
            record("\(error)")
            if exitCode == 0 { exitCode = 1 }
        }
        // Let the stop messages leave before the socket closes.
        Thread.sleep(forTimeInterval: 0.2)
        return exitCode!
    }

    /// The checkpoint already holds the last step: evaluate it and write the final parameters.
    func finishFromCheckpoint(_ path: String, step: Int) -> Int32 {
        do {
            let store = ParameterStore(layout: ParameterLayout(options.config.model))
            _ = try CheckpointFile.load(path, into: store)
            let phase = plan.phases[core.phase(ofStep: step - 1)]
            let report = evaluator.evaluate(store, model: "proclip \(options.config.name)", phase: phase.config.name, step: step)
            if !reports.contains(where: { $0.step == step && $0.phase == phase.config.name }) { reports.append(report) }
            try run.writeEval(reports)
            try run.writeParameters(store, name: "final.safetensors", config: options.config, step: step)
            record("the checkpoint is at the last step (\(step)); nothing to train: final.safetensors written from it")
            return 0
        } catch {
            record("finishing from \(path) failed: \(error)")
            return 1
        }
    }

    /// One message from a worker or a status client. Returns an exit status when the job ended.
    func handle(_ m: ControlMessage) throws -> Int32? {
        guard let peer = m.peer else { return nil }
        if options.security.keys != nil {
            // ZAP admitted only the job's keys; a status key may ask for status, nothing else.
            let allowed = m.header.type == .statusRequest ? [JobKeys.workerUser, JobKeys.statusUser] : [JobKeys.workerUser]
            guard let role = m.role, allowed.contains(role) else {
                channel.noteMalformed(ControlError("\(m.header.type)", "sender", "a \(m.role ?? "unauthenticated") connection may not send it"))
                return nil
            }
        }
        let t = now()
        var ds: [CoordinatorCore.Directive] = []
        switch m.header.type {
        case .register:
            let key = peer.map { String($0, radix: 16) }.joined()
            connections[key] = peer
            guard let hello = channel.decode(WorkerHello.self, from: m) else {
                // Probably another proclip version: say so rather than leave the worker waiting.
                ds = refuseRegistration(connection: key, error: channel.intake.lastRefusal)
                break
            }
            ds = core.onRegister(connection: key, hello: hello, now: t)
        case .ready:
            guard let r = channel.decode(Ready.self, from: m) else { return nil }
            ds = core.onReady(r, now: t)
        case .bound:
            guard let b = channel.decode(Bound.self, from: m) else { return nil }
            ds = core.onBound(b, now: t)
        case .heartbeat:
            guard let h = channel.decode(Heartbeat.self, from: m) else { return nil }
            ds = core.onHeartbeat(h, now: t)
            // The answer keeps the worker sure the coordinator is alive, and re-delivers the
            // current lease should one have been lost.
            _ = try? channel.send(.lease, Lease(generation: core.generation, leaseEnd: core.leaseEnd),
                                  generation: core.generation, to: peer)
        case .stepReport:
            guard let batch = channel.decode([StepReport].self, from: m) else { return nil }
            for r in batch {
                if r.generation == core.generation {
                    if r.step <= metricsStep {
                        // A new generation replays steps from its checkpoint: their earlier lines go.
                        do { try run.rewindMetrics(toStep: r.step - 1) } catch { ds += core.onFatal("\(error)") }
                    }
                    do { try run.appendMetrics(r.json) } catch { ds += core.onFatal("\(error)") }
                    metricsStep = r.step
                    for (k, v) in r.loss { smoothed[k] = smoothed[k].map { 0.9 * $0 + 0.1 * v } ?? v }
                    smoothedRate = smoothedRate.map { 0.9 * $0 + 0.1 * r.samplesPerSecond } ?? r.samplesPerSecond
                }
                ds += core.onStepReport(r, now: t)
            }
        case .failure:
            guard let f = channel.decode(FailureReport.self, from: m) else { return nil }
            ds = core.onFailure(f, now: t)
        case .leave:
            guard let l = channel.decode(Leave.self, from: m) else { return nil }
            ds = core.onLeave(l.workerID, now: t)
        case .checkpointWritten:
            guard let c = channel.decode(CheckpointWritten.self, from: m) else { return nil }
            ds = core.onCheckpoint(step: c.step, path: c.path, now: t)
        case .checkpointFailed:
            guard let c = channel.decode(CheckpointFailed.self, from: m) else { return nil }
            ds = core.onCheckpointFailed(c, now: t)
        case .paramsHeader:
            guard let h = channel.decode(ParamsHeader.self, from: m) else { return nil }
            guard h.bytes <= maxUploadBytes else {
                channel.noteMalformed(ControlError("ParamsHeader", "bytes", "\(h.bytes) exceeds the \(maxUploadBytes) bytes of this model's parameters"))
                return nil
            }
            uploads.begin(h)
        case .paramsChunk:
            if !uploads.add(chunk: Int(m.header.chunk), step: Int(m.header.step), bytes: m.payload) { channel.noteMalformed() }
            ds = startEvaluationIfReady()
        case .statusRequest:
            guard channel.decode(StatusRequest.self, from: m) != nil else { return nil }
            try channel.send(.statusReply, status(), to: peer)
        default:
            channel.noteMalformed()
        }
        return execute(ds)
    }

    /// The direct-link key of `generation`: 32 fresh random bytes (hex) the first time it is
    /// asked for, the same for every rank of it; nil when the job runs insecure.
    func linkKey(for generation: UInt64) -> String? {
        guard options.security.keys != nil else { return nil }
        if let (g, key) = currentLinkKey, g == generation { return key }
        var rng = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        currentLinkKey = (generation, key)
        return key
    }

    /// The answer to a registration whose payload was refused (counted as malformed already).
    func refuseRegistration(connection: String, error: ControlError?) -> [CoordinatorCore.Directive] {
        let what = error.map { "\($0)" } ?? "WorkerHello refused"
        let reason = error?.undecodable ?? true
            ? "the registration did not decode (\(what)): is the worker another proclip version? This coordinator runs "
              + "\(ProclipInfo.version); run the same proclip build everywhere"
            : "the registration was refused: \(what)"
        return [.refuse(connection: connection, Refusal(reason: reason)), .event("refused a registration: \(what)")]
    }

    /// Carries out directives; returns an exit status when one ends the job.
    func execute(_ directives: [CoordinatorCore.Directive]) -> Int32? {
        var code: Int32?
        for d in directives {
            switch d {
            case .welcome(let connection, let w):
                if let peer = connections.removeValue(forKey: connection) {
                    identities[w.workerID] = peer
                    _ = try? channel.send(.welcome, w, to: peer)
                }
            case .refuse(let connection, let r):
                if let peer = connections.removeValue(forKey: connection) { _ = try? channel.send(.refuse, r, to: peer) }
            case .refuseMember(let id, let r):
                if let peer = identities[id] { _ = try? channel.send(.refuse, r, to: peer) }
            case .assign(let id, var a):
                a.linkKey = linkKey(for: a.generation)
                if let peer = identities[id] { _ = try? channel.send(.assign, a, generation: a.generation, step: a.startStep, to: peer) }
            case .checkpointNow(let id, let c):
                if let peer = identities[id] { _ = try? channel.send(.checkpointNow, c, generation: c.generation, to: peer) }
            case .go(let g):
                for id in core.ring { if let peer = identities[id] { _ = try? channel.send(.go, g, generation: g.generation, to: peer) } }
            case .lease(let l):
                for id in core.ring { if let peer = identities[id] { _ = try? channel.send(.lease, l, generation: l.generation, to: peer) } }
            case .stop(let target, let reason):
                let ids = target.map { [$0] } ?? Array(identities.keys)
                for id in ids { if let peer = identities[id] { _ = try? channel.send(.stop, Stop(reason: reason), to: peer) } }
            case .evaluate(let phase, let step, let final):
                pendingEvaluations[step] = (phase, final)
                code = execute(startEvaluationIfReady()) ?? code
            case .event(let text):
                record(text)
            case .exit(let c):
                code = c
            }
        }
        return code
    }

    /// A log line: train.log, stderr and the status events.
    func record(_ text: String) {
        let t = now()
        run.log("[\(fixed(t, 1)) s] \(text)")
        if options.verbose { fputs("proclip coordinator: \(text)\n", stderr) }
        events.append(StatusReport.Event(time: t, text: text))
        if events.count > 50 { events.removeFirst(events.count - 50) }
    }
}

extension CoordinatorServer {
    /// The checkpoint to resume from: `auto` takes the newest that verifies in `directory` (falling
    /// back past corrupt ones, each named in a note with its reason; none valid means a fresh
    /// start, with one note naming every file skipped), a path takes that file. A checkpoint of
    /// another dataset is refused; of another config too, unless allowed.
    static func chooseCheckpoint(_ resume: String, directory: String, config: JobConfig, manifestHash: String,
                                 allowConfigChange: Bool) throws -> (checkpoint: (Int, String)?, notes: [String], metricsLine: String?) {
        var notes: [String] = []
        let header: CheckpointHeader
        if resume == "auto" {
            guard !directory.isEmpty else { throw TrainingError("--resume auto needs checkpoints (not --no-checkpoints)") }
            let selection = CheckpointDirectory(directory).newestValid()
            notes += selection.notices.map { "resume: \($0)" }
            guard let h = selection.header else {
                // One line naming every file passed over and why, before the fresh start.
                let skipped = selection.skipped.map { "\($0.path.split(separator: "/").last ?? ""): \($0.reason)" }
                notes.append(skipped.isEmpty ? "resume: no checkpoint in \(directory); starting from step 0"
                             : "resume: no valid checkpoint in \(directory) (skipped \(skipped.joined(separator: "; "))); starting from step 0")
                return (nil, notes, nil)
            }
            notes += selection.skipped.map { "resume: \($0.path): \($0.reason); skipped" }
            header = h
        } else {
            header = try CheckpointFile.verify(resume)
        }
        let meta = header.meta
        guard meta.manifestHash == manifestHash else {
            throw TrainingError("\(header.path): the checkpoint was trained on data \(meta.manifestHash), this dataset is \(manifestHash)")
        }
        if meta.configHash != config.hash {
            guard allowConfigChange else {
                throw TrainingError("\(header.path): the checkpoint's config hashes to \(meta.configHash), this config to \(config.hash) "
                                    + "(pass --allow-config-change to resume anyway)")
            }
            notes.append("resume: config changed (\(meta.configHash) → \(config.hash)), allowed")
        }
        guard header.model == config.model else {
            throw TrainingError("\(header.path): the checkpoint's model \(header.model) differs from the config's \(config.model)")
        }
        notes.append("resume: from \(header.path) (step \(meta.step), phase '\(meta.phaseName)', epoch \(meta.epoch) step \(meta.epochStep))")
        // Absolute: the path travels to workers, which may run in another directory or on another host.
        return ((meta.step, absolutePath(header.path)), notes, meta.extra["metrics"])
    }
}

/// `path` made absolute against the working directory (checkpoint paths travel to other hosts).
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
}
