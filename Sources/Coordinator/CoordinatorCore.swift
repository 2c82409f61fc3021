import Control

/// The coordinator's decisions, as a pure state machine (no I/O, no clock, no logging): events in,
/// directives out. The shell owns the sockets and timers, feeds it events with the time, and
/// carries out what it returns.
///
/// Job states (`JobState`): `waiting` (too few workers) → `running` (a generation is training) →
/// `finishing` (last step done, final report pending) → `done`; `stopping` on a stop request;
/// `failed` when the job cannot go on. Member states (`MemberState`): `joining` (welcomed, opening
/// its data) → `standby` (ready) ⇄ `assigned` (in the current generation) → `dead` (heartbeats
/// stopped) or `left`. A worker of another proclip version is refused at registration.
///
/// Membership changes bump the generation. A new generation restarts from the newest checkpoint
/// (or from the start), so every worker holds the same state; messages of older generations are
/// ignored by construction.
public struct CoordinatorCore: Sendable {
    /// Fixed inputs.
    public struct Settings: Sendable, Equatable {
        /// Fewest workers a generation may have.
        public var minWorkers: Int
        /// The job starts as soon as this many have joined (or `minWorkers` after `startGrace`).
        public var workers: Int
        public var heartbeatSeconds = 1.0
        /// A member is dead when its last heartbeat is older than this.
        public var heartbeatTimeout = 10.0
        /// After `minWorkers` joined, wait this long for more (up to `workers`).
        public var startGrace = 3.0
        /// Steps granted ahead of the last reported step.
        public var leaseSteps = 50
        /// Give up after this many generations in a row that made no progress.
        public var maxRestarts = 5
        /// After a failure report, wait this long for a death to explain it, then re-form anyway.
        public var failureGrace = 3.0
        /// Checkpoints: where, every how many steps, how many kept (empty directory: none).
        public var checkpoint = CheckpointPolicy(directory: "", every: 0, keep: 3)
        /// Also a checkpoint at least this often, seconds (0: no time-based checkpoints).
        public var checkpointSeconds = 0.0
        /// On a stop request, wait this long for rank 0's final checkpoint before stopping anyway.
        public var stopCheckpointTimeout = 60.0
        /// Stop the job (exit 1) after this many checkpoints in a row could not be written; the
        /// last good one stays (0: never stop for failed checkpoints).
        public var maxCheckpointFailures = 2

        public init(minWorkers: Int, workers: Int) {
            self.minWorkers = minWorkers
            self.workers = workers
        }
    }

    /// One registered worker.
    public struct Member: Sendable, Equatable {
        public let id: UInt64
        public let hello: WorkerHello
        public var state = MemberState.joining
        public var rank: Int?
        public var lastHeartbeat: Double
        public var step = 0
        public var computeSeconds = 0.0
        public var commSeconds = 0.0
        public var allreduceGBs = 0.0
        /// Whether its dataset passed the manifest check (it was ready once).
        public var dataChecked = false
    }

    /// What the shell must do.
    public enum Directive: Sendable, Equatable {
        /// Reply to a registration.
        case welcome(connection: String, Welcome)
        case refuse(connection: String, Refusal)
        /// Refuse a welcomed member (it ends).
        case refuseMember(UInt64, Refusal)
        /// Send a member its place in a new generation.
        case assign(UInt64, Assignment)
        /// Send every member of the generation a longer lease.
        case lease(Lease)
        /// Every member of the generation is bound: tell them all to connect.
        case go(Go)
        /// Ask rank 0 for a checkpoint after its current step.
        case checkpointNow(UInt64, CheckpointNow)
        /// Tell a member (or all, nil) to stop, with the reason.
        case stop(UInt64?, String)
        /// Evaluate the parameters of `step` (the end of phase `phase`, or the final step) and
        /// call `onEvaluated`.
        case evaluate(phase: Int, step: Int, final: Bool)
        /// Something worth a log line and a status event.
        case event(String)
        /// The job ended: exit with this status.
        case exit(Int32)
    }

    public let settings: Settings
    /// Global step at which each phase starts, and the total.
    public let phaseStarts: [Int]
    public let phaseNames: [String]
    public let totalSteps: Int
    let config: String
    let configHash: String
    let manifestHash: String

    public private(set) var state: JobState = .waiting
    public private(set) var generation: UInt64 = 0
    public private(set) var members: [UInt64: Member] = [:]
    /// Ranks of the current generation, in rank order.
    public private(set) var ring: [UInt64] = []
    public private(set) var lastReport: StepReport?
    public private(set) var leaseEnd = 0
    /// Newest checkpoint: its global step and path.
    public private(set) var checkpoint: (step: Int, path: String)?
    /// When a stop waits for a final checkpoint: the deadline.
    public private(set) var stopDeadline: Double?
    private var lastCheckpointAt = 0.0
    public private(set) var startedAt: Double?
    public private(set) var generationStart = 0
    private var nextID: UInt64 = 1
    private var quorumAt: Double?
    private var restartsWithoutProgress = 0
    /// Checkpoints in a row that rank 0 could not write.
    public private(set) var checkpointFailures = 0
    private var evaluatedPhases: Set<Int> = []
    private var announcedPhase = -1
    private var reformAt: Double?
    private var bound: Set<UInt64> = []

    public init(settings: Settings, phaseStarts: [Int], phaseNames: [String], totalSteps: Int,
                config: String, configHash: String, manifestHash: String) {
        self.settings = settings
        self.phaseStarts = phaseStarts
        self.phaseNames = phaseNames
        self.totalSteps = totalSteps
        self.config = config
        self.configHash = configHash
        self.manifestHash = manifestHash
    }

    /// The global step the job has reached (rank 0's last report).
    public var step: Int { lastReport?.step ?? generationStart }

    /// The phase of global step `s` (the step about to run).
    public func phase(ofStep s: Int) -> Int {
        var p = 0
        for (i, start) in phaseStarts.enumerated() where s >= start { p = i }
        return p
    }

    // MARK: events

    /// A worker asks to join. `connection` is the shell's name for its socket peer.
    public mutating func onRegister(connection: String, hello: WorkerHello, now: Double) -> [Directive] {
        if state == .done || state == .failed || state == .stopping {
            return [.refuse(connection: connection, Refusal(reason: "the job is \(state.rawValue)"))]
        }
        if hello.version != ProclipInfo.version {
            let reason = "proclip version differs: the worker runs \(hello.version), the coordinator \(ProclipInfo.version) "
                + "(run the same proclip build everywhere)"
            return [.refuse(connection: connection, Refusal(reason: reason)),
                    .event("refused \(hello.host):\(hello.pid): version \(hello.version) ≠ \(ProclipInfo.version)")]
        }
        if let h = hello.configHash, h != configHash {
            return [.refuse(connection: connection, Refusal(reason: "config differs: the worker's config hashes to \(h), the coordinator's to \(configHash)")),
                    .event("refused \(hello.host):\(hello.pid): config \(h) ≠ \(configHash)")]
        }
        let id = nextID
        nextID += 1
        members[id] = Member(id: id, hello: hello, lastHeartbeat: now)
        return [
            .welcome(connection: connection, Welcome(workerID: id, config: config, configHash: configHash, heartbeatSeconds: settings.heartbeatSeconds)),
            .event("joined: worker \(id) \(hello.host):\(hello.pid) (\(hello.threads) threads, \(hello.dataEndpoint))"),
        ]
    }

    /// A welcomed worker opened its dataset. A different dataset is refused (the member leaves).
    public mutating func onReady(_ r: Ready, now: Double) -> [Directive] {
        guard var m = members[r.workerID], m.state == .joining else { return [] }
        m.lastHeartbeat = now
        if r.manifestHash != manifestHash {
            m.state = .left
            members[r.workerID] = m
            let reason = "data manifest differs: the worker's dataset hashes to \(r.manifestHash), the coordinator's to \(manifestHash)"
            return [.refuseMember(r.workerID, Refusal(reason: reason)), .event("refused worker \(r.workerID) \(m.hello.host):\(m.hello.pid): \(reason)")]
        }
        m.state = .standby
        m.dataChecked = true
        members[r.workerID] = m
        var out: [Directive] = [.event("ready: worker \(r.workerID) \(m.hello.host):\(m.hello.pid)")]
        if state == .waiting {
            let live = liveMembers().count
            if live >= settings.minWorkers && quorumAt == nil { quorumAt = now }
            if live >= settings.workers { out += formGeneration(now: now) }
        }
        return out
    }

    /// A member's heartbeat.
    /// A member declared dead that heartbeats again (it was paused, or cut off for a while) is
    /// live once more and joins the next generation.
    public mutating func onHeartbeat(_ hb: Heartbeat, now: Double) -> [Directive] {
        guard var m = members[hb.workerID], m.state != .left else { return [] }
        if m.state == .dead { return revive(m, now: now) }
        m.lastHeartbeat = now
        if hb.generation == generation && m.state == .assigned {
            m.step = hb.step
            m.computeSeconds = hb.computeSeconds
            m.commSeconds = hb.commSeconds
            m.allreduceGBs = hb.allreduceGBs
        }
        members[hb.workerID] = m
        return []
    }

    /// A dead member speaks again: live (standby, without a rank) if its dataset was checked, else
    /// back to joining; a job waiting for workers may start its next generation with it.
    private mutating func revive(_ member: Member, now: Double) -> [Directive] {
        guard state == .waiting || state == .running else { return [] }
        var m = member
        m.lastHeartbeat = now
        m.rank = nil
        m.state = m.dataChecked ? .standby : .joining
        members[m.id] = m
        var out: [Directive] = [.event("back: worker \(m.id) \(m.hello.host):\(m.hello.pid) (heartbeats resumed); it joins the next generation")]
        if state == .waiting && m.state == .standby {
            let live = liveMembers().count
            if live >= settings.minWorkers && quorumAt == nil { quorumAt = now }
            if live >= settings.workers { out += formGeneration(now: now) }
        }
        return out
    }

    /// Rank 0 finished a step.
    public mutating func onStepReport(_ r: StepReport, now: Double) -> [Directive] {
        guard r.generation == generation, state == .running else { return [] }
        var out: [Directive] = []
        lastReport = r
        restartsWithoutProgress = 0
        let current = phase(ofStep: r.step - 1)
        if current > announcedPhase {
            announcedPhase = current
            out.append(.event("phase \(current + 1)/\(phaseStarts.count) '\(phaseNames[current])' started at step \(phaseStarts[current])"))
        }
        if let p = phaseStarts.firstIndex(where: { $0 == r.step }), p > 0, !evaluatedPhases.contains(p - 1) {
            evaluatedPhases.insert(p - 1)
            out.append(.event("phase '\(phaseNames[p - 1])' ended at step \(r.step)"))
            out.append(.evaluate(phase: p - 1, step: r.step, final: false))
        }
        if r.step >= totalSteps {
            state = .finishing
            let last = phase(ofStep: r.step - 1)
            evaluatedPhases.insert(last)
            out.append(.event("training finished at step \(r.step)"))
            out.append(.evaluate(phase: last, step: r.step, final: true))
            return out
        }
        if r.step + settings.leaseSteps / 2 >= leaseEnd && leaseEnd < totalSteps {
            leaseEnd = min(r.step + settings.leaseSteps, totalSteps)
            out.append(.lease(Lease(generation: generation, leaseEnd: leaseEnd)))
        }
        return out
    }

    /// A member of the new generation listens again; when all have, they may connect.
    public mutating func onBound(_ b: Bound, now: Double) -> [Directive] {
        guard b.generation == generation, state == .running, ring.contains(b.workerID) else { return [] }
        bound.insert(b.workerID)
        return bound.count == ring.count ? [.go(Go(generation: generation))] : []
    }

    /// A member cannot go on in its generation. If no death explains it within `failureGrace`
    /// seconds, the ring is formed again with the live members.
    /// A fatal failure (the next generation would meet it too: a non-finite loss, say) ends the
    /// job at once.
    public mutating func onFailure(_ f: FailureReport, now: Double) -> [Directive] {
        guard f.generation == generation, state == .running, members[f.workerID] != nil else { return [] }
        if f.fatal { return fail("worker \(f.workerID) at step \(f.step): \(f.reason)") }
        if reformAt == nil { reformAt = now + settings.failureGrace }
        return [.event("worker \(f.workerID) failed at step \(f.step): \(f.reason)")]
    }

    /// Rank 0 could not write the checkpoint of `step`. After `maxCheckpointFailures` in a row the
    /// job stops (the last good checkpoint stays); a stop waiting for its checkpoint stops now.
    public mutating func onCheckpointFailed(_ c: CheckpointFailed, now: Double) -> [Directive] {
        guard state == .running || state == .stopping else { return [] }
        checkpointFailures += 1
        let line = "checkpoint of step \(c.step) failed: \(c.path): \(c.reason)"
        if state == .stopping, stopDeadline != nil {
            stopDeadline = nil
            state = .failed
            return [.stop(nil, "the coordinator is stopping"), .event(line), .event("stopped without a checkpoint"), .exit(1)]
        }
        if settings.maxCheckpointFailures > 0 && checkpointFailures >= settings.maxCheckpointFailures {
            return [.event(line)] + fail("\(checkpointFailures) checkpoints in a row could not be written (the last: \(c.path): \(c.reason))"
                                         + (checkpoint.map { "; the newest good one is \($0.path) (step \($0.step))" } ?? ""))
        }
        return [.event(line)]
    }

    /// The coordinator itself cannot go on (a run file it must write cannot be written): the job
    /// stops with status 1, `reason` naming what failed.
    public mutating func onFatal(_ reason: String) -> [Directive] {
        guard state != .done && state != .failed else { return [] }
        return fail(reason)
    }

    /// Ends the job: every worker is stopped, one line says why, the exit status is 1.
    private mutating func fail(_ reason: String) -> [Directive] {
        state = .failed
        stopDeadline = nil
        return [.stop(nil, "the job failed: \(reason)"), .event("failed: \(reason)"), .exit(1)]
    }

    /// Rank 0 wrote a checkpoint of global step `step` at `path`.
    public mutating func onCheckpoint(step: Int, path: String, now: Double = 0) -> [Directive] {
        if checkpoint == nil || step >= checkpoint!.step { checkpoint = (step, path) }
        checkpointFailures = 0
        lastCheckpointAt = now
        var out: [Directive] = [.event("checkpoint at step \(step): \(path)")]
        if state == .stopping, stopDeadline != nil {
            stopDeadline = nil
            out += [.stop(nil, "the coordinator is stopping"), .event("stopped after the checkpoint of step \(step)"), .exit(143)]
        }
        return out
    }

    /// Starts the job from a checkpoint (`--resume`): the first generation begins at its step;
    /// phases that ended before it are not evaluated again.
    public mutating func resume(from step: Int, path: String) {
        checkpoint = (step, path)
        generationStart = step
        for i in phaseStarts.indices {
            let end = i + 1 < phaseStarts.count ? phaseStarts[i + 1] : totalSteps
            if end <= step { evaluatedPhases.insert(i) }
        }
        announcedPhase = phaseStarts.contains(step) ? phase(ofStep: step) - 1 : phase(ofStep: step)
    }

    /// An evaluation asked for by `.evaluate` is done.
    public mutating func onEvaluated(phase: Int, step: Int, final: Bool) -> [Directive] {
        guard final, state == .finishing else { return [] }
        state = .done
        return [.stop(nil, "the job is done"), .event("done: \(step) steps"), .exit(0)]
    }

    /// A member says goodbye.
    public mutating func onLeave(_ id: UInt64, now: Double) -> [Directive] {
        guard var m = members[id] else { return [] }
        let wasInRing = ring.contains(id)
        m.state = .left
        members[id] = m
        var out: [Directive] = [.event("left: worker \(id) \(m.hello.host):\(m.hello.pid)")]
        if wasInRing && state == .running { out += membershipChanged(now: now) }
        return out
    }

    /// Stop the job (SIGTERM / SIGINT). While a ring trains and checkpoints are on, rank 0 is
    /// first asked for a checkpoint (so the job resumes where it stopped); the workers are stopped
    /// when it is written, or after `stopCheckpointTimeout`.
    public mutating func onStopRequested(now: Double) -> [Directive] {
        guard state != .done && state != .failed && state != .stopping else { return [] }
        let training = state == .running
        state = .stopping
        if training, !settings.checkpoint.directory.isEmpty, let rank0 = ring.first {
            stopDeadline = now + settings.stopCheckpointTimeout
            return [.event("stop requested at step \(step): checkpointing first"),
                    .checkpointNow(rank0, CheckpointNow(generation: generation, reason: "the coordinator is stopping"))]
        }
        return [.stop(nil, "the coordinator is stopping"), .event("stop requested at step \(step)"), .exit(143)]
    }

    /// Time passes: deaths by silence, the start grace, progress checks, time-based checkpoints.
    public mutating func onTick(now: Double) -> [Directive] {
        if state == .done || state == .failed { return [] }  // the job has ended: nothing left to decide
        var out: [Directive] = []
        if state == .stopping, let d = stopDeadline, now >= d {
            stopDeadline = nil
            return [.stop(nil, "the coordinator is stopping"), .event("no checkpoint within \(Int(settings.stopCheckpointTimeout)) s; stopping anyway"), .exit(143)]
        }
        if state == .running, settings.checkpointSeconds > 0, !settings.checkpoint.directory.isEmpty,
           now - lastCheckpointAt >= settings.checkpointSeconds, let rank0 = ring.first {
            lastCheckpointAt = now
            out.append(.checkpointNow(rank0, CheckpointNow(generation: generation, reason: "every \(Int(settings.checkpointSeconds)) s")))
        }
        var died = false
        for (id, m) in members where (m.state == .assigned || m.state == .standby || m.state == .joining) && now - m.lastHeartbeat > settings.heartbeatTimeout {
            var d = m
            d.state = .dead
            members[id] = d
            out.append(.event("dead: worker \(id) \(m.hello.host):\(m.hello.pid) (no heartbeat for \(Int(now - m.lastHeartbeat)) s)"))
            if ring.contains(id) { died = true }
        }
        if died && state == .running {
            out += membershipChanged(now: now)
        } else if let at = reformAt, now >= at, state == .running {
            out.append(.event("re-forming the ring after a failure"))
            out += membershipChanged(now: now)
        }
        if state == .waiting, let q = quorumAt, liveMembers().count >= settings.minWorkers, now - q >= settings.startGrace {
            out += formGeneration(now: now)
        }
        return out
    }

    // MARK: generations

    /// Members that are ready or in the ring.
    public var liveCount: Int { liveMembers().count }

    func liveMembers() -> [Member] {
        members.values.filter { $0.state == .standby || $0.state == .assigned }
    }

    private mutating func membershipChanged(now: Double) -> [Directive] {
        restartsWithoutProgress += 1
        if restartsWithoutProgress > settings.maxRestarts {
            state = .failed
            return [.stop(nil, "the job failed: \(settings.maxRestarts) restarts without progress"),
                    .event("failed: \(settings.maxRestarts) restarts without progress"), .exit(1)]
        }
        if liveMembers().count >= settings.minWorkers { return formGeneration(now: now) }
        state = .waiting
        quorumAt = nil
        for id in ring { if var m = members[id], m.state == .assigned { m.state = .standby; m.rank = nil; members[id] = m } }
        ring = []
        return [.event("waiting: \(liveMembers().count) live worker(s), need \(settings.minWorkers)")]
    }

    /// A new generation over the live members: ranks in locality order (host, then pid), a fresh
    /// start or the newest checkpoint, and a first lease.
    private mutating func formGeneration(now: Double) -> [Directive] {
        reformAt = nil
        bound = []
        let live = liveMembers().sorted { ($0.hello.host, $0.hello.pid, $0.id) < ($1.hello.host, $1.hello.pid, $1.id) }
        let chosen = Array(live.prefix(settings.workers))
        generation += 1
        ring = chosen.map(\.id)
        state = .running
        quorumAt = nil
        let start = checkpoint?.step ?? 0
        generationStart = start
        lastReport = nil
        leaseEnd = min(start + settings.leaseSteps, totalSteps)
        if startedAt == nil { startedAt = now }
        if lastCheckpointAt == 0 { lastCheckpointAt = now }
        var out: [Directive] = [.event("generation \(generation): \(chosen.count) worker(s), "
                                       + (checkpoint.map { "resuming from step \($0.step) (\($0.path))" } ?? "starting at step 0"))]
        let endpoints = chosen.map(\.hello.dataEndpoint)
        for (rank, m) in chosen.enumerated() {
            var member = m
            member.state = .assigned
            member.rank = rank
            member.step = start
            members[m.id] = member
            out.append(.assign(m.id, Assignment(generation: generation, rank: rank, world: chosen.count, endpoints: endpoints,
                                                startStep: start, resume: checkpoint?.path, leaseEnd: leaseEnd, totalSteps: totalSteps,
                                                checkpoint: settings.checkpoint)))
        }
        for m in live.dropFirst(chosen.count) { members[m.id]?.rank = nil }
        return out
    }
}
