import Control
import Coordinator
import XCTest

/// Every transition of the coordinator's state machine, with time as a parameter.
final class CoordinatorCoreTests: XCTestCase {
    func hello(_ host: String, _ pid: Int32, config: String? = nil) -> WorkerHello {
        WorkerHello(version: ProclipInfo.version, host: host, pid: pid, threads: 1, dataEndpoint: "tcp://\(host):\(1000 + pid)", configHash: config)
    }

    /// Registers a worker and reports its dataset ready; returns the directives of both.
    @discardableResult
    func join(_ c: inout CoordinatorCore, _ conn: String, _ h: WorkerHello, now: Double, manifest: String = "m1") -> [CoordinatorCore.Directive] {
        var out = c.onRegister(connection: conn, hello: h, now: now)
        for d in out { if case .welcome(_, let w) = d { out += c.onReady(Ready(workerID: w.workerID, manifestHash: manifest), now: now) } }
        return out
    }

    func core(min: Int = 2, workers: Int = 3, total: Int = 100) -> CoordinatorCore {
        var s = CoordinatorCore.Settings(minWorkers: min, workers: workers)
        s.leaseSteps = 20
        return CoordinatorCore(settings: s, phaseStarts: [0, 60], phaseNames: ["inherit", "contrast"], totalSteps: total,
                               config: "yaml", configHash: "c1", manifestHash: "m1")
    }

    func assignments(_ ds: [CoordinatorCore.Directive]) -> [UInt64: Assignment] {
        var out: [UInt64: Assignment] = [:]
        for d in ds { if case .assign(let id, let a) = d { out[id] = a } }
        return out
    }

    func report(_ c: CoordinatorCore, _ step: Int) -> StepReport {
        StepReport(generation: c.generation, step: step, phase: c.phase(ofStep: step - 1), epoch: 0, loss: ["total": 1], lr: [:],
                   logitScale: 2.6, gradNorm: 1, samplesPerSecond: 100, stepSeconds: 0.01, json: "{}")
    }

    func testStartsWhenEveryExpectedWorkerJoinedWithRanksInLocalityOrder() {
        var c = core()
        join(&c, "a", hello("hostB", 7), now: 0)
        join(&c, "b", hello("hostA", 9), now: 0.1)
        XCTAssertEqual(c.state, .waiting)
        let ds = join(&c, "c", hello("hostA", 3), now: 0.2)
        XCTAssertEqual(c.state, .running)
        let a = assignments(ds)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(c.generation, 1)
        let byRank = a.values.sorted { $0.rank < $1.rank }
        XCTAssertEqual(byRank.map(\.endpoints[0]), Array(repeating: "tcp://hostA:1003", count: 3), "every rank sees the same table")
        XCTAssertEqual(byRank[0].endpoints, ["tcp://hostA:1003", "tcp://hostA:1009", "tcp://hostB:1007"], "host, then pid")
        XCTAssertTrue(byRank.allSatisfy { $0.world == 3 && $0.startStep == 0 && $0.resume == nil && $0.leaseEnd == 20 })
    }

    func testStartsWithMinimumAfterTheGrace() {
        var c = core(min: 2, workers: 4)
        join(&c, "a", hello("h", 1), now: 0)
        join(&c, "b", hello("h", 2), now: 1)
        XCTAssertTrue(c.onTick(now: 2).isEmpty)
        XCTAssertEqual(c.state, .waiting)
        let ds = c.onTick(now: 4.5)
        XCTAssertEqual(c.state, .running)
        XCTAssertEqual(assignments(ds).count, 2)
    }

    func testRefusesMismatchedManifestOrConfig() {
        var c = core()
        let ds = join(&c, "x", hello("h", 1), now: 0, manifest: "other")
        guard let stop = ds.first(where: { if case .refuseMember = $0 { return true }; return false }),
              case .refuseMember(let id, let refusal) = stop else { return XCTFail("\(ds)") }
        let reason = refusal.reason
        XCTAssertTrue(reason.contains("data manifest differs") && reason.contains("other") && reason.contains("m1"), reason)
        XCTAssertEqual(c.members[id]?.state, .left)
        let ds2 = c.onRegister(connection: "y", hello: hello("h", 2, config: "c9"), now: 0)
        guard case .refuse(_, let r2) = ds2[0] else { return XCTFail("\(ds2)") }
        XCTAssertTrue(r2.reason.contains("config differs") && r2.reason.contains("c9"), r2.reason)
        XCTAssertEqual(c.liveCount, 0)
        let ok = c.onRegister(connection: "z", hello: hello("h", 3, config: "c1"), now: 0)
        guard case .welcome(_, let w) = ok[0] else { return XCTFail("\(ok)") }
        XCTAssertEqual(w.config, "yaml")
    }

    func testLeasesExtendAndPhasesAreEvaluatedAndTheJobFinishes() {
        var c = core(min: 1, workers: 1, total: 100)
        join(&c, "a", hello("h", 1), now: 0)
        var leases: [Int] = [], evaluations: [(Int, Int, Bool)] = [], events: [String] = []
        for step in 1...100 {
            for d in c.onStepReport(report(c, step), now: Double(step)) {
                switch d {
                case .lease(let l): leases.append(l.leaseEnd)
                case .evaluate(let p, let s, let f): evaluations.append((p, s, f))
                case .event(let e): events.append(e)
                default: break
                }
            }
        }
        XCTAssertEqual(leases.first, 30)
        XCTAssertEqual(leases.last, 100)
        XCTAssertTrue(leases == leases.sorted())
        XCTAssertEqual(evaluations.map(\.0), [0, 1])
        XCTAssertEqual(evaluations.map(\.1), [60, 100])
        XCTAssertEqual(evaluations.map(\.2), [false, true])
        XCTAssertTrue(events.contains { $0.contains("phase 2/2 'contrast' started at step 60") }, "\(events)")
        XCTAssertEqual(c.state, .finishing)
        let end = c.onEvaluated(phase: 1, step: 100, final: true)
        XCTAssertEqual(c.state, .done)
        XCTAssertTrue(end.contains(.exit(0)))
        XCTAssertTrue(end.contains(.stop(nil, "the job is done")))
    }

    func testSilentWorkerIsDeclaredDeadAndTheRingReformsFromTheCheckpoint() {
        var c = core(min: 2, workers: 3)
        for (i, h) in ["a", "b", "c"].enumerated() { join(&c, h, hello(h, Int32(i)), now: 0) }
        XCTAssertEqual(c.generation, 1)
        _ = c.onStepReport(report(c, 5), now: 1)
        _ = c.onCheckpoint(step: 5, path: "/ckpt/step5.lz4")
        let ids = Array(c.members.keys)
        for t in stride(from: 1.0, through: 12, by: 1) {
            for id in ids.dropFirst() { _ = c.onHeartbeat(Heartbeat(workerID: id, generation: 1, step: 6, state: .running, computeSeconds: 0, commSeconds: 0, allreduceGBs: 0), now: t) }
        }
        let ds = c.onTick(now: 12)
        XCTAssertTrue(ds.contains { if case .event(let e) = $0 { return e.hasPrefix("dead: worker \(ids[0])") }; return false }, "\(ds)")
        XCTAssertEqual(c.generation, 2)
        let a = assignments(ds)
        XCTAssertEqual(a.count, 2)
        XCTAssertTrue(a.values.allSatisfy { $0.world == 2 && $0.startStep == 5 && $0.resume == "/ckpt/step5.lz4" && $0.generation == 2 })
        XCTAssertNil(a[ids[0]])
        // Reports of the old generation are ignored.
        var stale = report(c, 9)
        stale.generation = 1
        XCTAssertTrue(c.onStepReport(stale, now: 13).isEmpty)
        XCTAssertEqual(c.step, 5)
    }

    func heartbeat(_ id: UInt64, generation: UInt64, state: WorkerState = .running) -> Heartbeat {
        Heartbeat(workerID: id, generation: generation, step: 6, state: state, computeSeconds: 0, commSeconds: 0, allreduceGBs: 0)
    }

    /// A worker paused past the heartbeat timeout (SIGSTOP) is declared dead; the job waits for
    /// two workers; when its heartbeats resume it is live again and the next generation forms
    /// with it, from the checkpoint.
    func testAPausedWorkerThatComesBackRejoinsAtTheNextGeneration() {
        var c = core(min: 2, workers: 2)
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        _ = c.onStepReport(report(c, 5), now: 1)
        _ = c.onCheckpoint(step: 5, path: "/ckpt/step5.lz4")
        let ids = c.members.keys.sorted()
        for t in stride(from: 1.0, through: 12, by: 1) { _ = c.onHeartbeat(heartbeat(ids[1], generation: 1), now: t) }
        _ = c.onTick(now: 12)
        XCTAssertEqual(c.members[ids[0]]?.state, .dead)
        XCTAssertEqual(c.state, .waiting)
        let ds = c.onHeartbeat(heartbeat(ids[0], generation: 1), now: 30)
        XCTAssertTrue(ds.contains { if case .event(let e) = $0 { return e.hasPrefix("back: worker \(ids[0])") } else { return false } }, "\(ds)")
        XCTAssertEqual(c.state, .running)
        XCTAssertEqual(c.generation, 2)
        let a = assignments(ds)
        XCTAssertEqual(Set(a.keys), Set(ids))
        XCTAssertTrue(a.values.allSatisfy { $0.startStep == 5 && $0.resume == "/ckpt/step5.lz4" && $0.world == 2 })
    }

    /// With fewer workers allowed, the job goes on without the paused one; when it comes back it
    /// waits (standby) for the next generation.
    func testAWorkerThatComesBackWhileTheJobRunsWaitsForTheNextGeneration() {
        var c = core(min: 1, workers: 2)
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        let ids = c.members.keys.sorted()
        for t in stride(from: 1.0, through: 12, by: 1) { _ = c.onHeartbeat(heartbeat(ids[1], generation: 1), now: t) }
        _ = c.onTick(now: 12)
        XCTAssertEqual(c.generation, 2)
        let ds = c.onHeartbeat(heartbeat(ids[0], generation: 1), now: 20)
        XCTAssertEqual(assignments(ds), [:])
        XCTAssertEqual(c.members[ids[0]]?.state, .standby)
        XCTAssertNil(c.members[ids[0]]?.rank)
        XCTAssertEqual(c.generation, 2)
    }

    /// A worker that died before its dataset was checked comes back joining, not live; nobody
    /// comes back to a job that ended.
    func testRevivalNeedsACheckedDatasetAndARunningJob() {
        var c = core(min: 2, workers: 3)
        var welcome: Welcome?
        for d in c.onRegister(connection: "a", hello: hello("a", 1), now: 0) { if case .welcome(_, let w) = d { welcome = w } }
        let id = try! XCTUnwrap(welcome).workerID
        _ = c.onTick(now: 20)
        XCTAssertEqual(c.members[id]?.state, .dead)
        _ = c.onHeartbeat(heartbeat(id, generation: 0, state: .joining), now: 21)
        XCTAssertEqual(c.members[id]?.state, .joining)
        XCTAssertEqual(c.liveCount, 0)

        var d = core(min: 1, workers: 1)
        join(&d, "a", hello("a", 1), now: 0)
        let only = d.members.keys.first!
        _ = d.onStopRequested(now: 1)
        _ = d.onTick(now: 30)
        XCTAssertEqual(d.onHeartbeat(heartbeat(only, generation: 1), now: 31), [])
    }

    func testTooFewSurvivorsWaitThenAReplacementRestartsTheJob() {
        var c = core(min: 2, workers: 2)
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        let first = c.members.keys.min()!
        _ = c.onLeave(first, now: 1)
        XCTAssertEqual(c.state, .waiting)
        let ds = join(&c, "c", hello("c", 3), now: 2)
        XCTAssertEqual(c.state, .running)
        XCTAssertEqual(c.generation, 2)
        XCTAssertEqual(assignments(ds).count, 2)
    }

    func testStopRequestStopsEveryoneAndRefusesNewcomers() {
        var c = core(min: 1, workers: 1)
        join(&c, "a", hello("a", 1), now: 0)
        let ds = c.onStopRequested(now: 1)
        XCTAssertEqual(c.state, .stopping)
        XCTAssertTrue(ds.contains(.exit(143)))
        guard case .refuse = c.onRegister(connection: "b", hello: hello("b", 2), now: 2)[0] else { return XCTFail() }
    }

    func testGivesUpAfterRepeatedRestartsWithoutProgress() {
        var c = core(min: 1, workers: 2)
        c = CoordinatorCore(settings: { var s = c.settings; s.maxRestarts = 2; return s }(), phaseStarts: [0], phaseNames: ["p"],
                            totalSteps: 10, config: "", configHash: "c1", manifestHash: "m1")
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        var t = 0.0
        var exits: [Int32] = []
        for i in 0..<6 {
            t += 1
            join(&c, "n\(i)", hello("n\(i)", Int32(10 + i)), now: t)
            let victim = c.ring[0]
            for d in c.onLeave(victim, now: t) { if case .exit(let code) = d { exits.append(code) } }
            if c.state == .failed { break }
        }
        XCTAssertEqual(c.state, .failed)
        XCTAssertEqual(exits, [1])
    }

    func testFailureWithoutADeathReformsTheRingAfterTheGrace() {
        var c = core(min: 2, workers: 2)
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        XCTAssertEqual(c.generation, 1)
        let id = c.ring[0]
        _ = c.onFailure(FailureReport(workerID: id, generation: 1, step: 0, reason: "joining the ring: timed out"), now: 1)
        for id in c.ring { _ = c.onHeartbeat(Heartbeat(workerID: id, generation: 1, step: 0, state: .failed, computeSeconds: 0, commSeconds: 0, allreduceGBs: 0), now: 2) }
        XCTAssertTrue(assignments(c.onTick(now: 2)).isEmpty, "within the grace")
        let ds = c.onTick(now: 4.5)
        XCTAssertEqual(c.generation, 2)
        XCTAssertEqual(assignments(ds).count, 2)
    }

    func checkpointed(min: Int = 2, workers: Int = 2, stopTimeout: Double = 60) -> CoordinatorCore {
        var s = CoordinatorCore.Settings(minWorkers: min, workers: workers)
        s.leaseSteps = 20
        s.checkpoint = CheckpointPolicy(directory: "/ckpt", every: 10, keep: 3)
        s.stopCheckpointTimeout = stopTimeout
        return CoordinatorCore(settings: s, phaseStarts: [0, 60], phaseNames: ["inherit", "contrast"], totalSteps: 100,
                               config: "yaml", configHash: "c1", manifestHash: "m1")
    }

    func testGoOnlyOnceEveryMemberOfTheGenerationIsBound() {
        var c = core(min: 3, workers: 3)
        for h in ["a", "b", "c"] { join(&c, h, hello(h, 1), now: 0) }
        XCTAssertEqual(c.ring.count, 3)
        XCTAssertTrue(c.onBound(Bound(workerID: c.ring[0], generation: 1), now: 1).isEmpty)
        XCTAssertTrue(c.onBound(Bound(workerID: c.ring[0], generation: 1), now: 1).isEmpty, "a repeated bound counts once")
        XCTAssertTrue(c.onBound(Bound(workerID: 999, generation: 1), now: 1).isEmpty, "not a member of the ring")
        XCTAssertTrue(c.onBound(Bound(workerID: c.ring[1], generation: 1), now: 1).isEmpty)
        XCTAssertEqual(c.onBound(Bound(workerID: c.ring[2], generation: 1), now: 2), [.go(Go(generation: 1))])
    }

    func testStopWaitsForRankZerosCheckpointThenStops() {
        var c = checkpointed()
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        _ = c.onStepReport(report(c, 7), now: 1)
        let ds = c.onStopRequested(now: 2)
        XCTAssertEqual(c.state, .stopping)
        XCTAssertTrue(ds.contains(.checkpointNow(c.ring[0], CheckpointNow(generation: 1, reason: "the coordinator is stopping"))), "\(ds)")
        XCTAssertFalse(ds.contains(.exit(143)), "not before the checkpoint")
        XCTAssertEqual(c.stopDeadline, 62)
        XCTAssertFalse(c.onTick(now: 30).contains(.exit(143)), "within the timeout")
        XCTAssertTrue(c.onStopRequested(now: 31).isEmpty, "a second request changes nothing")
        let end = c.onCheckpoint(step: 8, path: "/ckpt/step-8.lz4", now: 32)
        XCTAssertTrue(end.contains(.stop(nil, "the coordinator is stopping")), "\(end)")
        XCTAssertTrue(end.contains(.exit(143)))
        XCTAssertNil(c.stopDeadline)
        XCTAssertEqual(c.checkpoint?.step, 8)
        XCTAssertFalse(c.onTick(now: 100).contains(.exit(143)), "stopped once")
    }

    func testStopWithoutACheckpointWithinTheTimeoutStopsAnyway() {
        var c = checkpointed(stopTimeout: 5)
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        _ = c.onStopRequested(now: 2)
        XCTAssertTrue(c.onTick(now: 6.9).isEmpty)
        let ds = c.onTick(now: 7)
        XCTAssertTrue(ds.contains(.exit(143)), "\(ds)")
        XCTAssertTrue(ds.contains(.stop(nil, "the coordinator is stopping")))
        XCTAssertTrue(ds.contains { if case .event(let e) = $0 { return e.contains("stopping anyway") }; return false })
        XCTAssertNil(c.stopDeadline)
    }

    func testResumeStartsTheFirstGenerationAtTheCheckpointAndSkipsEndedPhases() {
        var c = core(min: 1, workers: 1, total: 100)
        c.resume(from: 70, path: "/ckpt/step-70.lz4")
        XCTAssertEqual(c.step, 70)
        let ds = join(&c, "a", hello("a", 1), now: 0)
        let a = assignments(ds)
        XCTAssertEqual(a.count, 1)
        XCTAssertTrue(a.values.allSatisfy { $0.startStep == 70 && $0.resume == "/ckpt/step-70.lz4" && $0.leaseEnd == 90 }, "\(a)")
        var evaluations: [Int] = []
        var events: [String] = []
        for step in 71...100 {
            for d in c.onStepReport(report(c, step), now: Double(step)) {
                if case .evaluate(let p, _, _) = d { evaluations.append(p) }
                if case .event(let e) = d { events.append(e) }
            }
        }
        XCTAssertEqual(evaluations, [1], "phase 0 ended at step 60, before the checkpoint")
        XCTAssertFalse(events.contains { $0.contains("started at step") }, "phase 2 had started before the checkpoint: \(events)")
        XCTAssertEqual(c.state, .finishing)
    }

    func testResumeAtAPhaseBoundaryAnnouncesThePhase() {
        var c = core(min: 1, workers: 1, total: 100)
        c.resume(from: 60, path: "/ckpt/step-60.lz4")
        join(&c, "a", hello("a", 1), now: 0)
        let ds = c.onStepReport(report(c, 61), now: 1)
        XCTAssertTrue(ds.contains { if case .event(let e) = $0 { return e.contains("phase 2/2 'contrast' started at step 60") }; return false }, "\(ds)")
        XCTAssertFalse(ds.contains { if case .evaluate = $0 { return true }; return false })
    }

    func testAWorkerOfAnotherVersionIsRefused() {
        var c = core()
        var h = hello("h", 1)
        h.version = "0.0.1"
        let ds = c.onRegister(connection: "x", hello: h, now: 0)
        guard case .refuse(let conn, let r) = ds.first else { return XCTFail("\(ds)") }
        XCTAssertEqual(conn, "x")
        XCTAssertTrue(r.reason.contains("0.0.1") && r.reason.contains(ProclipInfo.version) && r.reason.contains("same proclip build"), r.reason)
        XCTAssertTrue(c.members.isEmpty)
    }

    func testMessagesOfAnOlderGenerationAreIgnored() {
        var c = core(min: 2, workers: 2)
        join(&c, "a", hello("a", 1), now: 0)
        join(&c, "b", hello("b", 2), now: 0)
        let first = c.ring
        _ = c.onLeave(first[0], now: 1)
        join(&c, "c", hello("c", 3), now: 1)
        XCTAssertEqual(c.generation, 2)
        let survivor = first[1]
        XCTAssertTrue(c.onBound(Bound(workerID: survivor, generation: 1), now: 2).isEmpty)
        XCTAssertTrue(c.onFailure(FailureReport(workerID: survivor, generation: 1, step: 3, reason: "old ring"), now: 2).isEmpty)
        XCTAssertTrue(c.onTick(now: 10).isEmpty, "no re-forming for a failure of generation 1")
        _ = c.onHeartbeat(Heartbeat(workerID: survivor, generation: 1, step: 40, state: .running, computeSeconds: 9, commSeconds: 9, allreduceGBs: 9), now: 3)
        XCTAssertEqual(c.members[survivor]?.step, 0, "a heartbeat of generation 1 keeps the member alive but reports nothing")
        XCTAssertEqual(c.members[survivor]?.lastHeartbeat, 3)
        var stale = report(c, 5)
        stale.generation = 1
        XCTAssertTrue(c.onStepReport(stale, now: 3).isEmpty)
        XCTAssertEqual(c.generation, 2)
        XCTAssertNil(c.lastReport)
    }

    // MARK: loud failures

    /// A running generation of two workers (ids 1 and 2) at step 5, checkpoints on.
    func runningJob(maxCheckpointFailures: Int = 2) -> CoordinatorCore {
        var s = CoordinatorCore.Settings(minWorkers: 2, workers: 2)
        s.checkpoint = CheckpointPolicy(directory: "/ckpt", every: 10, keep: 3)
        s.maxCheckpointFailures = maxCheckpointFailures
        var c = CoordinatorCore(settings: s, phaseStarts: [0, 60], phaseNames: ["inherit", "contrast"], totalSteps: 100,
                                config: "yaml", configHash: "c1", manifestHash: "m1")
        join(&c, "a", hello("hostA", 1), now: 0)
        join(&c, "b", hello("hostA", 2), now: 0)
        XCTAssertEqual(c.state, .running)
        _ = c.onStepReport(report(c, 5), now: 1)
        return c
    }

    func testAFatalFailureStopsTheJobAtOnceWithStatus1() {
        var c = runningJob()
        let ds = c.onFailure(FailureReport(workerID: 1, generation: c.generation, step: 6,
                                           reason: "non-finite loss (clip = nan)", fatal: true), now: 2)
        XCTAssertEqual(c.state, .failed)
        XCTAssertTrue(ds.contains(.exit(1)), "\(ds)")
        XCTAssertTrue(ds.contains { if case .stop(nil, _) = $0 { return true } else { return false } })
        XCTAssertTrue(ds.contains { if case .event(let e) = $0 { return e.contains("step 6") && e.contains("clip = nan") } else { return false } })
        XCTAssertEqual(c.onFailure(FailureReport(workerID: 2, generation: c.generation, step: 6, reason: "x", fatal: true), now: 2), [],
                       "the same failure from the other rank changes nothing")
        XCTAssertTrue(c.onTick(now: 30).isEmpty, "no re-forming after the job failed")
    }

    func testTheSecondCheckpointFailureInARowStopsTheJobKeepingTheLastGoodOne() {
        var c = runningJob()
        _ = c.onCheckpoint(step: 10, path: "/ckpt/ckpt-10.lz4", now: 3)
        var ds = c.onCheckpointFailed(CheckpointFailed(step: 20, path: "/ckpt/tmp-20", reason: "No space left on device"), now: 4)
        XCTAssertEqual(ds, [.event("checkpoint of step 20 failed: /ckpt/tmp-20: No space left on device")])
        XCTAssertEqual(c.state, .running)
        _ = c.onCheckpoint(step: 30, path: "/ckpt/ckpt-30.lz4", now: 5)
        XCTAssertEqual(c.checkpointFailures, 0, "a good checkpoint resets the count")
        _ = c.onCheckpointFailed(CheckpointFailed(step: 40, path: "/ckpt/tmp-40", reason: "No space left on device"), now: 6)
        ds = c.onCheckpointFailed(CheckpointFailed(step: 50, path: "/ckpt/tmp-50", reason: "No space left on device"), now: 7)
        XCTAssertEqual(c.state, .failed)
        XCTAssertTrue(ds.contains(.exit(1)), "\(ds)")
        XCTAssertTrue(ds.contains { if case .event(let e) = $0 { return e.contains("/ckpt/tmp-50") && e.contains("/ckpt/ckpt-30.lz4") } else { return false } },
                      "the line names the failed file and the newest good checkpoint: \(ds)")
        XCTAssertEqual(c.checkpoint?.step, 30)
    }

    func testCheckpointFailuresCanBeTolerated() {
        var c = runningJob(maxCheckpointFailures: 0)
        for k in 1...5 { _ = c.onCheckpointFailed(CheckpointFailed(step: 10 * k, path: "/ckpt/t", reason: "full"), now: Double(k)) }
        XCTAssertEqual(c.state, .running)
    }

    func testAStopWhoseCheckpointFailsStopsAtOnceWithStatus1() {
        var c = runningJob()
        XCTAssertTrue(c.onStopRequested(now: 2).contains { if case .checkpointNow = $0 { return true } else { return false } })
        let ds = c.onCheckpointFailed(CheckpointFailed(step: 7, path: "/ckpt/tmp-7", reason: "No space left on device"), now: 3)
        XCTAssertTrue(ds.contains(.exit(1)), "\(ds)")
        XCTAssertEqual(c.state, .failed)
        XCTAssertTrue(c.onTick(now: 100).isEmpty, "the stop's timeout no longer fires")
    }

    func testTheCoordinatorsOwnWriteFailureEndsTheJob() {
        var c = runningJob()
        let ds = c.onFatal("runs/x/metrics.jsonl: cannot write 120 bytes at 4096: No space left on device")
        XCTAssertTrue(ds.contains(.exit(1)))
        XCTAssertTrue(ds.contains(.event("failed: runs/x/metrics.jsonl: cannot write 120 bytes at 4096: No space left on device")))
        XCTAssertEqual(c.onFatal("again"), [], "once")
    }
}
