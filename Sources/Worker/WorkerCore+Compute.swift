import Control

/// The compute thread's events: how each task went, and every finished step.
extension WorkerCore {
    /// The welcome's config was parsed here (hashing to `configHash`) and the dataset opened
    /// (hashing to `manifestHash`); `plan` is the curriculum resolved against it.
    public mutating func onDataOpened(configHash: String, manifestHash: String, plan: Plan) -> [Directive] {
        guard stage == .openingData, let w = welcome else { return [] }
        stage = .standby
        guard configHash == w.configHash else {
            fatal = "the coordinator's config hashes to \(configHash) here, \(w.configHash) there (different proclip versions?)"
            return []
        }
        self.plan = plan
        health.state = .ready
        return [.send(.ready(Ready(workerID: w.workerID, manifestHash: manifestHash)))]
    }

    /// The assignment of generation `g` is loaded (or initialised) and its ring endpoint bound:
    /// tell the coordinator, then wait for every member (the fence).
    public mutating func onPrepared(_ g: UInt64, now: Double) -> [Directive] {
        guard stage == .preparing(g), let w = welcome else { return [] }
        stage = .fenced(g, since: now)
        return [.send(.bound(Bound(workerID: w.workerID, generation: g)))]
    }

    /// Generation `g`'s checkpoint could not be loaded.
    public mutating func onPrepareFailed(_ g: UInt64, reason: String) -> [Directive] {
        guard stage == .preparing(g) else { return [] }
        return fail(g, step: assignment?.startStep ?? 0, reason: reason)
    }

    /// The ring of generation `g` is joined: steps may run as far as the lease allows.
    public mutating func onJoined(_ g: UInt64) -> [Directive] {
        guard stage == .joining(g), let a = assignment, a.generation == g else { return [] }
        stage = .training(g, step: a.startStep)
        health.state = .running
        return []
    }

    /// The ring of generation `g` could not be joined.
    public mutating func onJoinFailed(_ g: UInt64, reason: String) -> [Directive] {
        guard stage == .joining(g) else { return [] }
        return fail(g, step: assignment?.startStep ?? 0, reason: reason)
    }

    /// Global step `step` of generation `g` is done (every rank took the same optimizer step).
    /// Rank 0 checkpoints at every phase end, every `checkpoint.every` steps and when asked,
    /// reports the step, and uploads the parameters at every phase end but the last step's.
    public mutating func onStep(_ g: UInt64, step s: Int, timing t: StepTiming) -> [Directive] {
        guard case .stepping(let running, _) = stage, running == g, let a = assignment, a.generation == g, let plan else { return [] }
        stage = .stepping(g, step: s)
        health.step = s
        timing.sum.computeSeconds += t.computeSeconds
        timing.sum.commSeconds += t.commSeconds
        timing.sum.reducedBytes += t.reducedBytes
        timing.sum.reduceSeconds += t.reduceSeconds
        timing.steps += 1
        if timing.steps >= 10 || s == a.totalSteps {
            let n = Double(timing.steps), w = Double(a.world), sum = timing.sum
            health.computeSeconds = sum.computeSeconds / n
            health.commSeconds = sum.commSeconds / n
            health.allreduceGBs = sum.reduceSeconds > 0 ? Double(sum.reducedBytes) / sum.reduceSeconds * 2 * (w - 1) / w / 1e9 : 0
            timing = (StepTiming(), 0)
        }
        guard a.rank == 0 else { return [] }
        var out: [Directive] = []
        let phase = plan.phase(ofStep: s - 1)
        let phaseEnd = s == plan.end(ofPhase: phase)
        let every = a.checkpoint.every
        if !a.checkpoint.directory.isEmpty,
           phaseEnd || (every > 0 && s % every == 0) || takeCheckpointRequest(for: g) {
            savesInFlight += 1
            out.append(.saveCheckpoint(step: s, phaseEnd: phaseEnd))
        }
        out.append(.reportStep(generation: g))
        if phaseEnd && s < a.totalSteps { out.append(.upload(step: s, phase: phase, final: false)) }
        return out
    }

    /// Takes a pending request for a checkpoint of generation `g` (true once per request).
    private mutating func takeCheckpointRequest(for g: UInt64) -> Bool {
        guard checkpointRequest == g else { return false }
        checkpointRequest = nil
        return true
    }

    /// A checkpoint was written (rank 0's background writer).
    public mutating func onCheckpointSaved(step: Int, path: String) -> [Directive] {
        savesInFlight = max(0, savesInFlight - 1)
        return [.send(.checkpointWritten(CheckpointWritten(step: step, path: path)))]
    }

    /// A checkpoint could not be written (`path`: the file it was writing). Training goes on;
    /// the coordinator hears of it and decides whether the job can (it stops after a few in a row).
    public mutating func onCheckpointFailed(step: Int, path: String, error: String) -> [Directive] {
        savesInFlight = max(0, savesInFlight - 1)
        return [.log("checkpoint of step \(step) failed: \(path): \(error)"),
                .send(.checkpointFailed(CheckpointFailed(step: step, path: path, reason: error)))]
    }

    /// A step of generation `g` failed in a way no generation can get past (a non-finite loss, a
    /// bad value): the coordinator is told, so that it stops the job, and the worker ends with
    /// status 1.
    public mutating func onFatal(_ g: UInt64, step: Int, reason: String) -> [Directive] {
        if fatal == nil { fatal = reason }
        if case .stepping(let running, _) = stage, running == g { stage = .training(g, step: step) }
        health.state = .failed
        return [.log("generation \(g) cannot go on at step \(step): \(reason)"),
                .send(.failure(FailureReport(workerID: welcome?.workerID ?? 0, generation: g, step: step, reason: reason, fatal: true)))]
    }

    /// A `checkpoint` or `awaitCheckpoints` task is done: every write has been reported.
    public mutating func onCheckpointsFlushed(_ g: UInt64) -> [Directive] {
        guard case .checkpointing(let running, let step) = stage, running == g else { return [] }
        savesInFlight = 0
        stage = .training(g, step: step)
        return []
    }

    /// A `train` task ended at global step `step` (its range done, or superseded between steps).
    public mutating func onTrained(_ g: UInt64, step: Int) -> [Directive] {
        guard case .stepping(let running, _) = stage, running == g, let a = assignment else { return [] }
        stage = .training(g, step: step)
        if isSuperseded(g) || step < a.totalSteps { return [] }
        stage = .standby
        doneGeneration = g
        health.state = .finished
        health.step = step
        var out: [Directive] = []
        if a.rank == 0, let plan { out.append(.upload(step: step, phase: plan.phase(ofStep: max(step - 1, 0)), final: true)) }
        return out + [.log("generation \(g): finished at step \(step)"), .leaveRing]
    }

    /// A collective of generation `g` failed at global step `step` (a peer timed out or closed,
    /// or the ring was abandoned). Unless a newer generation or a stop explains it, the
    /// coordinator hears of it and forms the next generation.
    public mutating func onTrainFailed(_ g: UInt64, step: Int, reason: String) -> [Directive] {
        guard case .stepping(let running, _) = stage, running == g else { return [] }
        stage = .training(g, step: step)
        if isSuperseded(g) { return [.log("generation \(g) ended at step \(step): superseded")] }
        return [.log("generation \(g) failed at step \(step): \(reason)")] + fail(g, step: step, reason: reason) + [.leaveRing]
    }

    /// Gives up on generation `g`: the coordinator is told, the worker waits for the next one.
    mutating func fail(_ g: UInt64, step: Int, reason: String) -> [Directive] {
        stage = .standby
        doneGeneration = max(doneGeneration, g)
        health.state = .failed
        return [.send(.failure(FailureReport(workerID: welcome?.workerID ?? 0, generation: g, step: step, reason: reason)))]
    }
}
