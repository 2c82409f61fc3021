import Checkpoints
import Control
import Features
import Foundation
import JobConfig
import Model
import Ring
import Tensors
import Trainer
import Wire
import Job

/// How a worker runs.
public struct WorkerOptions: Sendable {
    /// The coordinator's control endpoint, tcp://HOST:PORT.
    public var coordinator: String
    /// Threads for OpenBLAS and the element-wise kernels.
    public var threads = 1
    /// Dataset directory (default: the config's data.path).
    public var data: String?
    /// A config of the worker's own, checked against the coordinator's (nil: take the coordinator's).
    public var config: JobConfig?
    /// Data-plane endpoint to bind (default: tcp://<address toward the coordinator>:*).
    public var bind: String?
    /// Seconds a collective may wait for a peer.
    public var ringTimeout = 30.0
    /// Give up after this long without word from the coordinator (it answers every heartbeat).
    public var silenceLimit = 60.0
    /// Write progress lines to stderr.
    public var verbose = true
    /// All-reduce gradient buckets while backward still runs (off: one all-reduce after it).
    public var overlap = GradientOverlap.auto

    public init(coordinator: String) { self.coordinator = coordinator }
}

/// A worker process: registers with the coordinator, opens its data, then for each generation it
/// is assigned joins the ring and runs the leased steps of the curriculum (DESIGN §3), reporting
/// asynchronously. Returns the process exit status.
public final class WorkerRuntime {
    let options: WorkerOptions
    let mailbox = Mailbox()
    var control: ControlClient?

    public init(options: WorkerOptions) { self.options = options }

    public func log(_ s: String) { if options.verbose { fputs("proclip worker \(getpid()): \(s)\n", stderr) } }

    /// Asks the worker to leave (from a signal): it tells the coordinator and stops after the
    /// current step.
    public func requestStop(_ reason: String) {
        if let id = mailbox.monitor.withLock({ mailbox.welcome?.workerID }) { mailbox.post(.leave(Leave(workerID: id, reason: reason))) }
        mailbox.deliver(stop: reason)
    }

    public func run() -> Int32 {
        do {
            return try runThrowing()
        } catch {
            log("error: \(error)")
            control?.finish(within: 2)
            return 1
        }
    }

    private func runThrowing() throws -> Int32 {
        BLAS.useThreads(options.threads)
        let bindEndpoint = options.bind ?? "tcp://\(LocalAddress.toward(options.coordinator)):*"
        var ringOptions = RingOptions()
        ringOptions.timeout = options.ringTimeout
        var listener: RingListener? = try RingListener(bind: bindEndpoint, options: ringOptions)
        let endpoint = listener!.endpoint
        if let problem = listener!.sharedMemoryProblem {
            log("ring payloads from the predecessor travel in messages: \(problem) (each rank on ipc needs \(ringOptions.sharedMemorySlots * ringOptions.segmentBytes >> 20) MiB of /dev/shm)")
        }
        let host = endpoint.hasPrefix("tcp://") ? String(endpoint.dropFirst(6).split(separator: ":").first ?? "") : LocalAddress.hostname
        let hello = WorkerHello(version: ProclipInfo.version, host: host, pid: getpid(), threads: options.threads,
                                dataEndpoint: endpoint, configHash: options.config?.hash)
        let control = try ControlClient(endpoint: options.coordinator, hello: hello, mailbox: mailbox, silenceLimit: options.silenceLimit)
        self.control = control
        control.start()
        defer { control.finish(within: 5) }

        // Welcome (the config) or refusal.
        guard mailbox.wait(until: .after(seconds: options.silenceLimit), { $0.welcome != nil || $0.refusal != nil || $0.controlError != nil || $0.stop != nil }) else {
            throw TrainingError("no answer from the coordinator at \(options.coordinator) within \(Int(options.silenceLimit)) s — is it running, and reachable from here?")
        }
        if let r = mailbox.monitor.withLock({ mailbox.refusal }) { log("refused: \(r)"); return 2 }
        if let e = mailbox.monitor.withLock({ mailbox.controlError }) { throw TrainingError(e) }
        if let s = mailbox.monitor.withLock({ mailbox.stop }) { log("stopped: \(s)"); return 0 }
        let welcome = mailbox.monitor.withLock { mailbox.welcome! }
        let config = try JobConfig.parse(welcome.config, source: "the coordinator's config")
        guard config.hash == welcome.configHash else {
            throw TrainingError("the coordinator's config hashes to \(config.hash) here, \(welcome.configHash) there (different proclip versions?)")
        }
        let dataPath = options.data ?? config.data.path
        let dataset = try FeatureDataset.open(dataPath)
        _ = try DataCheck.variantMap(config: config, dataset: dataset)
        mailbox.post(.ready(Ready(workerID: welcome.workerID, manifestHash: dataset.manifest.contentHash)))
        log("worker \(welcome.workerID): job '\(config.name)', data \(dataPath) (\(dataset.manifest.contentHash)), ring endpoint \(endpoint)")
        mailbox.setHealth { $0.state = .ready }

        let layout = ParameterLayout(config.model)
        let store = ParameterStore(layout: layout)
        var generation: UInt64 = 0
        while true {
            // A standby worker may wait long for a place in a ring; the control thread ends the wait
            // (controlError) if the coordinator goes silent.
            _ = mailbox.wait(until: .after(seconds: 365 * 86400), {
                ($0.assignment?.generation ?? 0) > generation || $0.stop != nil || $0.controlError != nil || $0.refusal != nil
            })
            if let r = mailbox.monitor.withLock({ mailbox.refusal }) { log("refused: \(r)"); return 2 }
            if let s = mailbox.monitor.withLock({ mailbox.stop }) {
                log("stopping: \(s)")
                return 0
            }
            if let e = mailbox.monitor.withLock({ mailbox.controlError }) { throw TrainingError(e) }
            let a = mailbox.monitor.withLock { mailbox.assignment! }
            generation = a.generation
            if listener == nil {
                // The same endpoint as published at registration; the direct links' listener takes any free port
                // (its endpoint travels in the ring's hello).
                let direct = endpoint.hasPrefix("tcp://") ? "tcp://\(host):*" : nil
                listener = try RingListener(bind: endpoint, direct: direct, options: ringOptions)
            }
            try runGeneration(a, listener: &listener, config: config, dataset: dataset, store: store, workerID: welcome.workerID)
        }
    }

    /// One generation: join the ring, run the leased steps, report. A ring failure is reported
    /// and ends the generation (the coordinator forms the next one).
    /// `listener` is consumed when the ring forms (left in place if the generation ends before).
    private func runGeneration(_ a: Assignment, listener: inout RingListener?, config: JobConfig, dataset: FeatureDataset,
                               store: ParameterStore, workerID: UInt64) throws {
        let g = a.generation
        log("generation \(g): rank \(a.rank) of \(a.world), steps \(a.startStep)..<\(a.totalSteps)")
        mailbox.setHealth { $0.generation = g; $0.step = a.startStep; $0.state = .connecting }
        var optimizerSteps = 0
        if let path = a.resume {
            do {
                let header = try CheckpointFile.load(path, into: store)
                guard header.meta.step == a.startStep, header.meta.configHash == config.hash else {
                    throw TrainingError("\(path): step \(header.meta.step) and config \(header.meta.configHash) do not match the assignment (step \(a.startStep), config \(config.hash))")
                }
                optimizerSteps = header.meta.optimizerStep
                log("generation \(g): resumed from \(path) (step \(header.meta.step))")
            } catch {
                mailbox.post(.failure(FailureReport(workerID: workerID, generation: g, step: a.startStep, reason: "loading \(path): \(error)")))
                return
            }
        } else {
            store.initialize(seed: config.seed)
        }
        // Fence: connect only once every member of the generation has left its previous ring and
        // listens again (a hello sent to a peer's previous listener would be lost).
        mailbox.post(.bound(Bound(workerID: workerID, generation: g)))
        let superseded = { [mailbox] in mailbox.stop != nil || (mailbox.assignment?.generation ?? 0) > g }
        _ = mailbox.wait(until: .after(seconds: 365 * 86400), { m in m.goGeneration >= g || superseded() || m.controlError != nil })
        if let e = mailbox.monitor.withLock({ mailbox.controlError }) { throw TrainingError(e) }
        if mailbox.monitor.withLock(superseded) { return }
        let group: RingGroup
        guard let l = listener else { throw TrainingError("internal: no ring listener for generation \(g)") }
        listener = nil
        do {
            group = try RingGroup(listener: l, rank: a.rank, worldSize: a.world,
                                  successor: a.endpoints[(a.rank + 1) % a.world], generation: g)
        } catch {
            mailbox.post(.failure(FailureReport(workerID: workerID, generation: g, step: a.startStep, reason: "joining the ring: \(error)")))
            return
        }
        log("generation \(g): ring joined; payloads to the successor travel in \(group.payloadPath); "
            + (group.directEndpoint.map {
                (group.bulkOverDirectLinks ? "all-reduces, all-gathers, reduce-scatters" : "small all-reduces") + " and barriers over direct links (listening at \($0))"
            } ?? (group.bulkOverDirectLinks
                ? "large all-reduces, all-gathers and reduce-scatters over direct links to the ring neighbours"
                : "all-reduces and barriers round the ring")))
        nonisolated(unsafe) let abandonable = group
        mailbox.setAbandon { abandonable.abandon() }
        var reducer: RingGradientReducer?
        defer {
            mailbox.setAbandon(nil)
            reducer?.close()
            group.close()
        }
        let collectives = RingCollectives(group: group)
        let loop = try TrainingLoop(config: config, dataset: dataset, store: store)
        loop.restoreOptimizerSteps(optimizerSteps)
        // Rank 0 checkpoints (all ranks hold the same state).
        var writer: CheckpointWriter?
        if a.rank == 0 && !a.checkpoint.directory.isEmpty {
            var options = CheckpointOptions(producer: ProclipInfo.version)
            options.keepLast = max(1, a.checkpoint.keep)
            writer = try CheckpointWriter(directory: a.checkpoint.directory, layout: store.layout, options: options)
        }
        func report(_ outcomes: [SaveOutcome]) {
            for o in outcomes {
                switch o {
                case .saved(let s): mailbox.post(.checkpoint(CheckpointWritten(step: s.step, path: s.path)))
                case .failed(let step, let error): log("checkpoint of step \(step) failed: \(error)")
                }
            }
        }
        defer { if let writer { report(writer.finish()) } }
        // Metrics lines since the last checkpoint travel in the next one, so a resumed run can
        // restore the lines the coordinator had not received when the job died.
        var recentMetrics: [StepOutcome] = []
        var global = a.startStep
        var executor: DistributedExecutor?
        var stats = (compute: 0.0, comm: 0.0, bytes: 0, reduce: 0.0, n: 0)
        mailbox.setHealth { $0.state = .running }
        while global < a.totalSteps {
            _ = mailbox.wait(until: .after(seconds: 365 * 86400), { m in
                superseded() || m.controlError != nil || (m.leaseEnd(for: g) ?? 0) > global
            })
            if let e = mailbox.monitor.withLock({ mailbox.controlError }) { throw TrainingError(e) }
            if mailbox.monitor.withLock(superseded) { return }
            let end = min(mailbox.monitor.withLock { mailbox.leaseEnd(for: g) ?? global }, a.totalSteps)
            do {
                try loop.run(from: global, to: end, executor: { phase in
                    let engine = StepEngine(layout: store.layout, settings: phase.config.loss,
                                            ownership: Ownership(batch: phase.config.batch, world: a.world, rank: a.rank))
                    let phaseReducer = try RingGradientReducer.next(replacing: &reducer, group: group, engine: engine, overlap: self.options.overlap)
                    let bytes = engine.layout.span(of: engine.computedGroups).count * 4
                    self.log("phase \(phase.index + 1)/\(loop.plan.phases.count) '\(phase.config.name)' (\(phase.config.kind.rawValue)) from step \(max(global, phase.firstGlobalStep)); "
                             + "\(bytes) gradient bytes all-reduced \(phaseReducer == nil ? "after" : "during") backward")
                    let e = DistributedExecutor(engine: engine, collectives: collectives, reducer: phaseReducer)
                    executor = e
                    return e
                }, onStep: { o in
                    global = o.globalStep
                    if let e = executor {
                        stats.compute += e.lastComputeSeconds
                        stats.comm += e.lastCommSeconds
                        stats.bytes += e.lastReducedBytes
                        stats.reduce += e.lastReduceSeconds
                        stats.n += 1
                    }
                    if stats.n >= 10 || o.globalStep == a.totalSteps {
                        let n = Double(max(stats.n, 1)), w = Double(a.world)
                        let busbw = stats.reduce > 0 ? Double(stats.bytes) / stats.reduce * 2 * (w - 1) / w / 1e9 : 0
                        let s = stats
                        mailbox.setHealth {
                            $0.step = o.globalStep
                            $0.computeSeconds = s.compute / n
                            $0.commSeconds = s.comm / n
                            $0.allreduceGBs = busbw
                        }
                        stats = (0, 0, 0, 0, 0)
                    } else {
                        mailbox.setHealth { $0.step = o.globalStep }
                    }
                    if let writer {
                        recentMetrics.append(o)
                        let phaseEnd = o.phaseStep + 1 == o.phase.steps
                        let every = a.checkpoint.every
                        if phaseEnd || (every > 0 && o.globalStep % every == 0) || self.mailbox.takeCheckpointRequest(for: g) {
                            let next = o.phase.position(ofStep: o.phaseStep + 1)
                            _ = writer.save(store, meta: CheckpointMeta(
                                step: o.globalStep, phaseIndex: o.phase.index, phaseName: o.phase.config.name, phaseStep: o.phaseStep + 1,
                                phaseEnd: phaseEnd, epoch: next.epoch, epochStep: next.step, optimizerStep: loop.optimizerSteps, rngState: [],
                                config: config.text, configHash: config.hash, manifestHash: dataset.manifest.contentHash,
                                extra: ["world": "\(a.world)", "generation": "\(g)", "metrics": recentMetrics.map(\.json).joined(separator: "\n")]))
                            recentMetrics.removeAll(keepingCapacity: true)
                        }
                        report(writer.takeOutcomes())
                    }
                    // The report is formatted on the control thread, off this critical path.
                    if a.rank == 0 { mailbox.post(.stepOutcome(o, generation: g)) }
                }, onPhaseEnd: { phase, step in
                    if a.rank == 0 && step < a.totalSteps { self.upload(store, step: step, phase: phase.index, final: false) }
                }, shouldStop: { self.mailbox.monitor.withLock(superseded) })
            } catch let e as RingError {
                if mailbox.monitor.withLock(superseded) {
                    log("generation \(g) ended at step \(global): superseded")
                    return
                }
                log("generation \(g) failed at step \(global): \(e)")
                mailbox.setHealth { $0.state = .failed }
                mailbox.post(.failure(FailureReport(workerID: workerID, generation: g, step: global, reason: "\(e)")))
                return
            }
            if mailbox.monitor.withLock(superseded) { return }
        }
        mailbox.setHealth { $0.state = .finished; $0.step = global }
        if a.rank == 0, let (phase, _) = loop.plan.locate(globalStep: max(global - 1, 0)) {
            upload(store, step: global, phase: phase.index, final: true)
        }
        log("generation \(g): finished at step \(global)")
    }

    /// Sends the parameters (and the EMA teacher) of `step` to the coordinator.
    private func upload(_ store: ParameterStore, step: Int, phase: Int, final: Bool) {
        var w = SafeTensorsWriter()
        store.write(into: &w, includeEMA: true)
        let bytes = w.serialize()
        let chunks = (bytes.count + ControlLimits.paramsChunk - 1) / ControlLimits.paramsChunk
        mailbox.post(.params(ParamsHeader(step: step, phase: phase, final: final, bytes: bytes.count, chunks: chunks), bytes))
    }
}
