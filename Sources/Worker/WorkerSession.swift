import Basics
import Checkpoints
import Control
import Features
import Job
import JobConfig
import Model
import Ring
import Tensors
import Trainer
#if canImport(Glibc)
import Glibc
#endif

/// The compute thread's side of a worker: carries out the core's tasks with the dataset, the
/// parameters and the ring, and reports how each went. It makes no decision of its own beyond
/// the order of the calls a task needs; it is used from the compute thread only.
final class WorkerSession {
    let options: WorkerOptions
    let mailbox: Mailbox
    let log: (String) -> Void
    let ringOptions: RingOptions
    /// The ring endpoint every generation binds: the address published at registration.
    let endpoint: String
    /// The host named at registration (the endpoint's address for tcp).
    let host: String
    /// Bound and not yet handed to a ring (a ring consumes it; the next generation binds again).
    private var listener: RingListener?
    private var job: (config: JobConfig, dataset: FeatureDataset, store: ParameterStore)?
    /// The generation whose parameters are loaded, and its optimizer's step count.
    private var prepared: (generation: UInt64, optimizerSteps: Int)?
    private var ring: GenerationRing?

    /// Binds the ring endpoint (`options.bind`, or any port on the address toward the coordinator).
    init(options: WorkerOptions, mailbox: Mailbox, log: @escaping (String) -> Void) throws {
        self.options = options
        self.mailbox = mailbox
        self.log = log
        var ringOptions = RingOptions()
        ringOptions.timeout = options.ringTimeout
        self.ringOptions = ringOptions
        let l = try RingListener(bind: options.bind ?? "tcp://\(LocalAddress.toward(options.coordinator)):*", options: ringOptions)
        listener = l
        endpoint = l.endpoint
        host = endpoint.hasPrefix("tcp://") ? String(endpoint.dropFirst(6).split(separator: ":").first ?? "") : LocalAddress.hostname
        if let problem = l.sharedMemoryProblem {
            log("ring payloads from the predecessor travel in messages: \(problem) (each rank on ipc needs "
                + "\(ringOptions.sharedMemorySlots * ringOptions.segmentBytes >> 20) MiB of /dev/shm)")
        }
    }

    /// What this worker says about itself at registration.
    var hello: WorkerHello {
        WorkerHello(version: ProclipInfo.version, host: host, pid: getpid(), threads: options.threads,
                    dataEndpoint: endpoint, configHash: options.config?.hash)
    }

    /// Carries out `task`; returns the exit status when it ends the worker. Throws only what
    /// ends the worker with an error (a bad config or dataset, a failing step that is not the
    /// ring's); a generation's failures are reported to the core instead.
    func perform(_ task: WorkerCore.Task) throws -> Int32? {
        switch task {
        case .openData(let w): try openData(w)
        case .prepare(let a): try prepare(a)
        case .join(let a): try join(a)
        case .train(let g, let from, let to): try train(g, from: from, to: to)
        case .checkpoint(let g, let step):
            if let ring, ring.assignment.generation == g { save(ring, stepsDone: step, phaseEnd: nil) }
            flushCheckpoints(g)
        case .awaitCheckpoints(let g):
            flushCheckpoints(g)
        case .exit(let code, let reason):
            leaveRing()
            log(reason)
            return code
        }
        return nil
    }

    private func openData(_ w: Welcome) throws {
        let config = try JobConfig.parse(w.config, source: "the coordinator's config")
        let dataPath = options.data ?? config.data.path
        let dataset = try FeatureDataset.open(dataPath, verifyChecksums: true)
        _ = try DataCheck.variantMap(config: config, dataset: dataset)
        let plan = try CurriculumPlan(config: config, trainCount: dataset.indices(of: .train).count)
        job = (config, dataset, ParameterStore(layout: ParameterLayout(config.model)))
        let corePlan = WorkerCore.Plan(phaseStarts: plan.phases.map(\.firstGlobalStep), totalSteps: plan.totalSteps)
        let hash = dataset.manifest.contentHash
        carryOut(mailbox.handle { $0.onDataOpened(configHash: config.hash, manifestHash: hash, plan: corePlan) })
        if mailbox.read({ $0.fatal == nil }) {
            log("worker \(w.workerID): job '\(config.name)', data \(dataPath) (\(hash)), ring endpoint \(endpoint)")
        }
    }

    /// Leaves the ring in progress, binds the endpoint again if a ring consumed it, and loads
    /// the assignment's checkpoint (or initialises the parameters).
    private func prepare(_ a: Assignment) throws {
        guard let job else { throw TrainingError("internal: generation \(a.generation) assigned before the dataset was open") }
        leaveRing()
        let g = a.generation
        log("generation \(g): rank \(a.rank) of \(a.world), steps \(a.startStep)..<\(a.totalSteps)")
        if listener == nil {
            // The same endpoint as published at registration; the direct links' listener takes any
            // free port (its endpoint travels in the ring's hello).
            listener = try RingListener(bind: endpoint, direct: endpoint.hasPrefix("tcp://") ? "tcp://\(host):*" : nil, options: ringOptions)
        }
        var optimizerSteps = 0
        if let path = a.resume {
            do {
                let header = try CheckpointFile.load(path, into: job.store)
                guard header.meta.step == a.startStep, header.meta.configHash == job.config.hash else {
                    throw TrainingError("\(path): step \(header.meta.step) and config \(header.meta.configHash) do not match the "
                                        + "assignment (step \(a.startStep), config \(job.config.hash))")
                }
                optimizerSteps = header.meta.optimizerStep
                log("generation \(g): resumed from \(path) (step \(header.meta.step))")
            } catch {
                prepared = nil
                carryOut(mailbox.handle { $0.onPrepareFailed(g, reason: "loading \(path): \(error)") })
                return
            }
        } else {
            job.store.initialize(seed: job.config.seed)
        }
        prepared = (g, optimizerSteps)
        carryOut(mailbox.handle { $0.onPrepared(g, now: MonotonicClock.now()) })
    }

    /// Joins the assignment's ring (every member is bound: the fence opened).
    private func join(_ a: Assignment) throws {
        let g = a.generation
        guard let job, let prepared, prepared.generation == g, let l = listener else {
            throw TrainingError("internal: generation \(g) joined before it was prepared")
        }
        let loop = try TrainingLoop(config: job.config, dataset: job.dataset, store: job.store)
        loop.restoreOptimizerSteps(prepared.optimizerSteps)
        // Rank 0 checkpoints (all ranks hold the same state).
        var writer: CheckpointWriter?
        if a.rank == 0 && !a.checkpoint.directory.isEmpty {
            var o = CheckpointOptions(producer: ProclipInfo.version)
            o.keepLast = max(1, a.checkpoint.keep)
            writer = try CheckpointWriter(directory: a.checkpoint.directory, layout: job.store.layout, options: o)
        }
        listener = nil
        let group: RingGroup
        do {
            group = try RingGroup(listener: l, rank: a.rank, worldSize: a.world, successor: a.endpoints[(a.rank + 1) % a.world], generation: g)
        } catch {
            _ = writer?.finish()
            carryOut(mailbox.handle { $0.onJoinFailed(g, reason: "joining the ring: \(error)") })
            return
        }
        log("generation \(g): ring joined; payloads to the successor travel in \(group.payloadPath); "
            + (group.directEndpoint.map {
                (group.bulkOverDirectLinks ? "all-reduces, all-gathers, reduce-scatters" : "small all-reduces") + " and barriers over direct links (listening at \($0))"
            } ?? (group.bulkOverDirectLinks
                ? "large all-reduces, all-gathers and reduce-scatters over direct links to the ring neighbours"
                : "all-reduces and barriers round the ring")))
        ring = GenerationRing(assignment: a, group: group, loop: loop, writer: writer)
        mailbox.setAbandon(RingAbandoner(group: group).abandon)
        carryOut(mailbox.handle { $0.onJoined(g) })
    }

    /// Runs global steps `from ..< to` of generation `g` over its ring.
    private func train(_ g: UInt64, from: Int, to: Int) throws {
        guard let ring, ring.assignment.generation == g, let job else {
            throw TrainingError("internal: steps of generation \(g) without its ring")
        }
        let a = ring.assignment
        var global = from
        do {
            try ring.loop.run(from: from, to: to, executor: { phase in
                let engine = StepEngine(layout: job.store.layout, settings: phase.config.loss,
                                        ownership: Ownership(batch: phase.config.batch, world: a.world, rank: a.rank))
                let reducer = try RingGradientReducer.next(replacing: &ring.reducer, group: ring.group, engine: engine, overlap: options.overlap)
                let bytes = engine.layout.span(of: engine.computedGroups).count * 4
                log("phase \(phase.index + 1)/\(ring.loop.plan.phases.count) '\(phase.config.name)' (\(phase.config.kind.rawValue)) "
                    + "from step \(max(global, phase.firstGlobalStep)); \(bytes) gradient bytes all-reduced \(reducer == nil ? "after" : "during") backward")
                let e = DistributedExecutor(engine: engine, collectives: ring.collectives, reducer: reducer)
                ring.executor = e
                return e
            }, onStep: { o in
                global = o.globalStep
                let timing = ring.executor.map {
                    WorkerCore.StepTiming(computeSeconds: $0.lastComputeSeconds, commSeconds: $0.lastCommSeconds,
                                          reducedBytes: $0.lastReducedBytes, reduceSeconds: $0.lastReduceSeconds)
                } ?? WorkerCore.StepTiming()
                // Metrics lines since the last checkpoint travel in the next one, so a resumed run can
                // restore the lines the coordinator had not received when the job died.
                if ring.writer != nil { ring.recentMetrics.append(o) }
                let saved = ring.writer?.takeOutcomes() ?? []
                carryOut(mailbox.handle { core in
                    saved.flatMap { core.on($0) } + core.onStep(g, step: o.globalStep, timing: timing)
                }, step: o)
            }, shouldStop: { self.mailbox.read { $0.isSuperseded(g) } })
        } catch let e as RingError {
            carryOut(mailbox.handle { $0.onTrainFailed(g, step: global, reason: "\(e)") })
            return
        } catch {
            // Not the ring's: the step itself cannot be taken (a non-finite loss, a bad value).
            let reason = "\(error)"
            carryOut(mailbox.handle { $0.onFatal(g, step: global, reason: reason) })
            return
        }
        carryOut(mailbox.handle { $0.onTrained(g, step: global) })
    }

    /// Carries out the directives only this thread can: `step` is the step just finished, for
    /// the ones that concern it.
    private func carryOut(_ directives: [WorkerCore.Directive], step o: StepOutcome? = nil) {
        for d in directives {
            switch d {
            case .saveCheckpoint(let step, let phaseEnd):
                if let ring { save(ring, stepsDone: step, phaseEnd: phaseEnd) }
            case .reportStep(let g):
                if let o { mailbox.post(.stepOutcome(o, generation: g)) }
            case .upload(let step, let phase, let final):
                upload(step: step, phase: phase, final: final)
            case .leaveRing:
                leaveRing()
            case .send, .abandonRing, .log:
                break  // carried out by the mailbox
            }
        }
    }

    /// Starts writing the state after global step `s` (rank 0; in the background).
    private func save(_ ring: GenerationRing, stepsDone s: Int, phaseEnd: Bool?) {
        guard let writer = ring.writer, let job, let (phase, k) = ring.loop.plan.locate(globalStep: s - 1) else { return }
        let next = phase.position(ofStep: k + 1)
        _ = writer.save(job.store, meta: CheckpointMeta(
            step: s, phaseIndex: phase.index, phaseName: phase.config.name, phaseStep: k + 1,
            phaseEnd: phaseEnd ?? (k + 1 == phase.steps), epoch: next.epoch, epochStep: next.step,
            optimizerStep: ring.loop.optimizerSteps, rngState: [],
            config: job.config.text, configHash: job.config.hash, manifestHash: job.dataset.manifest.contentHash,
            extra: ["world": "\(ring.assignment.world)", "generation": "\(ring.assignment.generation)",
                    "metrics": ring.recentMetrics.map(\.json).joined(separator: "\n")]))
        ring.recentMetrics.removeAll(keepingCapacity: true)
    }

    /// Waits for the checkpoint writes in flight and reports them.
    private func flushCheckpoints(_ g: UInt64) {
        let outcomes = ring?.writer?.finish() ?? []
        carryOut(mailbox.handle { core in outcomes.flatMap { core.on($0) } + core.onCheckpointsFlushed(g) })
    }

    /// Sends the parameters (and the EMA teacher) of `step` to the coordinator.
    private func upload(step: Int, phase: Int, final: Bool) {
        guard let job else { return }
        var w = SafeTensorsWriter()
        job.store.write(into: &w, includeEMA: true)
        let bytes = w.serialize()
        let chunks = (bytes.count + ControlLimits.paramsChunk - 1) / ControlLimits.paramsChunk
        mailbox.post(.params(ParamsHeader(step: step, phase: phase, final: final, bytes: bytes.count, chunks: chunks), bytes))
    }

    /// Leaves the ring in progress, if any: waits for the checkpoint writer (reporting what it
    /// wrote), then closes the gradient reducer and the group.
    func leaveRing() {
        guard let r = ring else { return }
        ring = nil
        if let writer = r.writer {
            let outcomes = writer.finish()
            carryOut(mailbox.handle { core in outcomes.flatMap { core.on($0) } })
        }
        mailbox.setAbandon(nil)
        r.reducer?.close()
        r.group.close()
    }
}

/// One generation's ring and what trains over it.
final class GenerationRing {
    let assignment: Assignment
    let group: RingGroup
    let collectives: RingCollectives
    let loop: TrainingLoop
    let writer: CheckpointWriter?
    var reducer: RingGradientReducer?
    var executor: DistributedExecutor?
    var recentMetrics: [StepOutcome] = []

    init(assignment: Assignment, group: RingGroup, loop: TrainingLoop, writer: CheckpointWriter?) {
        self.assignment = assignment
        self.group = group
        collectives = RingCollectives(group: group)
        self.loop = loop
        self.writer = writer
    }
}

/// Lets another thread break a group's collectives out of their waits.
struct RingAbandoner: @unchecked Sendable {  // only `abandon()` is called, which RingGroup documents as thread-safe
    let group: RingGroup
    var abandon: @Sendable () -> Void { { [self] in group.abandon() } }
}

extension WorkerCore {
    /// A checkpoint writer's outcome as a core event.
    mutating func on(_ outcome: SaveOutcome) -> [Directive] {
        switch outcome {
        case .saved(let s): return onCheckpointSaved(step: s.step, path: s.path)
        case .failed(let step, let error): return onCheckpointFailed(step: step, path: error.path, error: error.problem)
        }
    }
}
