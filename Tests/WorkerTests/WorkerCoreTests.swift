import Control
import Worker
import XCTest

/// Every transition of the worker's state machine, with time as a parameter and no sockets.
final class WorkerCoreTests: XCTestCase {
    typealias Directive = WorkerCore.Directive

    let hello = WorkerHello(version: ProclipInfo.version, host: "hostA", pid: 7, threads: 1, dataEndpoint: "tcp://hostA:4000", configHash: nil)
    let welcome = Welcome(workerID: 3, config: "yaml", configHash: "c1", heartbeatSeconds: 1)
    /// Two phases: steps 0..<20 and 20..<30.
    let plan = WorkerCore.Plan(phaseStarts: [0, 20], totalSteps: 30)

    func core(silence: Double = 60, fence: Double = 300) -> WorkerCore {
        var s = WorkerCore.Settings(coordinator: "tcp://coord:29500")
        s.silenceLimit = silence
        s.fenceTimeout = fence
        return WorkerCore(settings: s, now: 0)
    }

    func assignment(_ g: UInt64, rank: Int = 0, start: Int = 0, lease: Int = 10, total: Int = 30,
                    every: Int = 5, directory: String = "/ckpt", resume: String? = nil) -> Assignment {
        Assignment(generation: g, rank: rank, world: 2, endpoints: ["tcp://a:1", "tcp://b:2"], startStep: start, resume: resume,
                   leaseEnd: lease, totalSteps: total, checkpoint: CheckpointPolicy(directory: directory, every: every, keep: 3))
    }

    /// A welcomed worker whose dataset is open (standby).
    func standby(_ c: inout WorkerCore) {
        _ = c.onStart(hello, now: 0)
        _ = c.onWelcome(welcome, now: 0.1)
        XCTAssertEqual(c.nextTask(), .openData(welcome))
        _ = c.onDataOpened(configHash: "c1", manifestHash: "m1", plan: plan)
    }

    /// A worker in generation `a`'s ring, training (between leases).
    func training(_ c: inout WorkerCore, _ a: Assignment) {
        standby(&c)
        _ = c.onAssignment(a, now: 1)
        XCTAssertEqual(c.nextTask(), .prepare(a))
        _ = c.onPrepared(a.generation, now: 1)
        _ = c.onGo(Go(generation: a.generation), now: 1)
        XCTAssertEqual(c.nextTask(), .join(a))
        _ = c.onJoined(a.generation)
    }

    func sends(_ ds: [Directive]) -> [WorkerMessage] {
        ds.compactMap { if case .send(let m) = $0 { return m } else { return nil } }
    }

    /// Runs steps `from ..< to` of generation `g` as the compute thread would; the directives of each step.
    func run(_ c: inout WorkerCore, _ g: UInt64, _ range: Range<Int>) -> [Int: [Directive]] {
        var out: [Int: [Directive]] = [:]
        for s in range {
            out[s + 1] = c.onStep(g, step: s + 1, timing: WorkerCore.StepTiming(computeSeconds: 0.01, commSeconds: 0.002,
                                                                               reducedBytes: 1000, reduceSeconds: 1e-6))
        }
        return out
    }

    // MARK: registration

    func testRegistersAndOpensTheDataOnceWelcomed() {
        var c = core()
        XCTAssertEqual(c.onStart(hello, now: 0), [.send(.register(hello))])
        XCTAssertNil(c.nextTask(), "nothing to do before the welcome")
        XCTAssertEqual(c.onTick(now: 0.5), [], "no heartbeat before the welcome")
        _ = c.onWelcome(welcome, now: 1)
        XCTAssertEqual(c.nextTask(), .openData(welcome))
        XCTAssertEqual(c.stage, .openingData)
        XCTAssertNil(c.nextTask(), "the data is being opened")
        _ = c.onWelcome(Welcome(workerID: 9, config: "other", configHash: "c9", heartbeatSeconds: 5), now: 1.5)
        XCTAssertEqual(c.welcome, welcome, "a second welcome changes nothing")
        let ready = c.onDataOpened(configHash: "c1", manifestHash: "m1", plan: plan)
        XCTAssertEqual(sends(ready), [.ready(Ready(workerID: 3, manifestHash: "m1"))])
        XCTAssertEqual(c.stage, .standby)
        XCTAssertEqual(c.health.state, .ready)
        XCTAssertNil(c.nextTask(), "standby until assigned")
    }

    func testAConfigThatHashesDifferentlyEndsTheWorkerWithAnError() {
        var c = core()
        _ = c.onStart(hello, now: 0)
        _ = c.onWelcome(welcome, now: 0)
        _ = c.nextTask()
        XCTAssertEqual(c.onDataOpened(configHash: "c2", manifestHash: "m1", plan: plan), [], "no Ready")
        guard case .exit(1, let reason)? = c.nextTask() else { return XCTFail("expected an exit with status 1") }
        XCTAssertTrue(reason.contains("c2") && reason.contains("c1"), reason)
    }

    func testRefusalEndsTheWorkerWithStatus2WhileRegisteringOrInStandby() {
        var c = core()
        _ = c.onStart(hello, now: 0)
        _ = c.onRefusal(Refusal(reason: "config differs"), now: 0.2)
        XCTAssertEqual(c.nextTask(), .exit(code: 2, reason: "refused: config differs"))
        XCTAssertEqual(c.stage, .exited(2))
        XCTAssertNil(c.nextTask(), "an exited worker gets no more tasks")

        var d = core()
        standby(&d)
        _ = d.onRefusal(Refusal(reason: "data manifest differs"), now: 1)
        XCTAssertEqual(d.nextTask(), .exit(code: 2, reason: "refused: data manifest differs"))
    }

    // MARK: heartbeats and the coordinator's silence

    func testHeartbeatsEveryPeriodCarryTheHealth() {
        var c = core()
        standby(&c)
        let first = sends(c.onTick(now: 1))
        guard case .heartbeat(let hb)? = first.first else { return XCTFail("expected a heartbeat, got \(first)") }
        XCTAssertEqual(hb.workerID, 3)
        XCTAssertEqual(hb.state, .ready)
        let inputs = c.taskInputs
        XCTAssertEqual(sends(c.onTick(now: 1.5)), [], "within the period")
        XCTAssertEqual(c.taskInputs, inputs, "a tick that decides nothing does not wake the compute thread")
        XCTAssertEqual(sends(c.onTick(now: 2.0)).count, 1)
    }

    func testTheCoordinatorIsLostAfterTheSilenceLimit() {
        var c = core(silence: 10)
        _ = c.onStart(hello, now: 0)
        _ = c.onTick(now: 9)
        XCTAssertNil(c.lost)
        let inputs = c.taskInputs
        _ = c.onTick(now: 10.5)
        XCTAssertNotEqual(c.taskInputs, inputs, "losing the coordinator wakes the compute thread")
        guard case .exit(1, let reason)? = c.nextTask() else { return XCTFail("expected an exit with status 1") }
        XCTAssertTrue(reason.contains("no answer from the coordinator at tcp://coord:29500 within 10 s"), reason)

        var d = core(silence: 10)
        standby(&d)
        _ = d.onLease(Lease(generation: 0, leaseEnd: 0), now: 8)  // any message shows it is alive
        _ = d.onTick(now: 17)
        XCTAssertNil(d.lost)
        _ = d.onTick(now: 18.5)
        guard case .exit(1, let later)? = d.nextTask() else { return XCTFail("expected an exit with status 1") }
        XCTAssertTrue(later.contains("no word from the coordinator"), later)
    }

    func testAnUnreadableMessageStillCountsAsWordFromTheCoordinator() {
        var c = core(silence: 10)
        standby(&c)
        c.onUnreadable(now: 9)
        _ = c.onTick(now: 15)
        XCTAssertNil(c.lost)
    }

    func testAFailedControlConnectionEndsTheWorkerWithAnError() {
        var c = core()
        standby(&c)
        _ = c.onControlError("socket closed")
        XCTAssertEqual(c.nextTask(), .exit(code: 1, reason: "error: control connection to tcp://coord:29500: socket closed"))
    }

    // MARK: a generation: assignment, fence, ring, leases

    func testAssignmentPreparesThenTheFenceOpensThenTheRingIsJoined() {
        var c = core()
        standby(&c)
        let a = assignment(1, start: 0, lease: 10)
        XCTAssertEqual(c.onAssignment(a, now: 1), [.abandonRing], "a newer generation abandons any ring in progress")
        XCTAssertEqual(c.nextTask(), .prepare(a))
        XCTAssertEqual(c.health.state, .connecting)
        XCTAssertEqual(c.health.generation, 1)
        XCTAssertEqual(sends(c.onPrepared(1, now: 2)), [.bound(Bound(workerID: 3, generation: 1))])
        XCTAssertEqual(c.stage, .fenced(1, since: 2))
        XCTAssertNil(c.nextTask(), "the fence holds until go")
        _ = c.onGo(Go(generation: 0), now: 3)
        XCTAssertNil(c.nextTask(), "a go of an older generation does not open it")
        _ = c.onGo(Go(generation: 1), now: 4)
        XCTAssertEqual(c.nextTask(), .join(a))
        XCTAssertEqual(c.onJoined(1), [])
        XCTAssertEqual(c.health.state, .running)
        XCTAssertEqual(c.nextTask(), .train(generation: 1, from: 0, to: 10))
        XCTAssertNil(c.nextTask(), "steps are running")
    }

    func testStepsRunAsFarAsTheLeaseAllows() {
        var c = core()
        let a = assignment(1, lease: 10, directory: "")
        training(&c, a)
        XCTAssertEqual(c.nextTask(), .train(generation: 1, from: 0, to: 10))
        _ = run(&c, 1, 0..<10)
        XCTAssertEqual(c.onTrained(1, step: 10), [])
        XCTAssertNil(c.nextTask(), "waiting for a longer lease")
        _ = c.onLease(Lease(generation: 2, leaseEnd: 50), now: 6)
        XCTAssertNil(c.nextTask(), "a lease of another generation is ignored")
        _ = c.onLease(Lease(generation: 1, leaseEnd: 25), now: 6)
        _ = c.onLease(Lease(generation: 1, leaseEnd: 20), now: 6)  // a late, shorter one
        XCTAssertEqual(c.nextTask(), .train(generation: 1, from: 10, to: 25))
        _ = run(&c, 1, 10..<25)
        _ = c.onTrained(1, step: 25)
        _ = c.onLease(Lease(generation: 1, leaseEnd: 99), now: 7)
        XCTAssertEqual(c.nextTask(), .train(generation: 1, from: 25, to: 30), "never past the last step")
    }

    func testAResumedGenerationStartsAtItsCheckpointStep() {
        var c = core()
        let a = assignment(2, start: 12, lease: 18, resume: "/ckpt/ckpt-12.lz4")
        training(&c, a)
        XCTAssertEqual(c.health.step, 12)
        XCTAssertEqual(c.nextTask(), .train(generation: 2, from: 12, to: 18))
    }

    // MARK: steps: checkpoints, reports, uploads, heartbeat averages

    func testRankZeroCheckpointsReportsAndUploadsAtTheRightSteps() {
        var c = core()
        training(&c, assignment(1, lease: 30, every: 8))
        _ = c.nextTask()
        let ds = run(&c, 1, 0..<30)
        let saved = ds.filter { $0.value.contains { if case .saveCheckpoint = $0 { return true } else { return false } } }.keys.sorted()
        XCTAssertEqual(saved, [8, 16, 20, 24, 30], "every 8 steps and at both phase ends")
        XCTAssertTrue(ds[20]!.contains(.saveCheckpoint(step: 20, phaseEnd: true)))
        XCTAssertTrue(ds[16]!.contains(.saveCheckpoint(step: 16, phaseEnd: false)))
        XCTAssertTrue((1...30).allSatisfy { ds[$0]!.contains(.reportStep(generation: 1)) }, "every step is reported")
        let uploads = ds.flatMap { $0.value.compactMap { if case .upload(let s, let p, let f) = $0 { return "\(s)/\(p)/\(f)" } else { return nil } } }
        XCTAssertEqual(uploads, ["20/0/false"], "the first phase's end; the last step's upload comes when the generation ends")
        let end = c.onTrained(1, step: 30)
        XCTAssertEqual(end.first, .upload(step: 30, phase: 1, final: true))
        XCTAssertTrue(end.contains(.leaveRing))
        XCTAssertEqual(c.health.state, .finished)
        XCTAssertEqual(c.stage, .standby)
    }

    func testOtherRanksOnlyTrain() {
        var c = core()
        training(&c, assignment(1, rank: 1, lease: 30))
        _ = c.nextTask()
        let ds = run(&c, 1, 0..<30)
        XCTAssertTrue(ds.values.allSatisfy { $0.isEmpty })
        XCTAssertEqual(c.onTrained(1, step: 30).filter { if case .upload = $0 { return true } else { return false } }, [])
    }

    func testNoCheckpointsWithoutADirectory() {
        var c = core()
        training(&c, assignment(1, lease: 30, every: 1, directory: ""))
        _ = c.nextTask()
        XCTAssertFalse(run(&c, 1, 0..<30).values.contains { $0.contains { if case .saveCheckpoint = $0 { return true } else { return false } } })
    }

    func testACheckpointRequestIsHonouredOnceAtTheNextStep() {
        var c = core()
        training(&c, assignment(1, lease: 30, every: 0))
        _ = c.nextTask()
        _ = run(&c, 1, 0..<3)
        _ = c.onCheckpointNow(CheckpointNow(generation: 0, reason: "old generation"), now: 5)
        XCTAssertFalse(run(&c, 1, 3..<4)[4]!.contains(.saveCheckpoint(step: 4, phaseEnd: false)), "a request of another generation is ignored")
        _ = c.onCheckpointNow(CheckpointNow(generation: 1, reason: "the coordinator is stopping"), now: 5)
        XCTAssertTrue(run(&c, 1, 4..<5)[5]!.contains(.saveCheckpoint(step: 5, phaseEnd: false)))
        XCTAssertFalse(run(&c, 1, 5..<6)[6]!.contains(.saveCheckpoint(step: 6, phaseEnd: false)), "once")
    }

    func testACheckpointAskedForAtALeaseEndIsWrittenWithoutAStep() {
        var c = core()
        training(&c, assignment(1, lease: 10, every: 0))
        _ = c.nextTask()
        _ = run(&c, 1, 0..<10)
        _ = c.onTrained(1, step: 10)
        XCTAssertNil(c.nextTask(), "waiting for a lease")
        _ = c.onCheckpointNow(CheckpointNow(generation: 1, reason: "the coordinator is stopping"), now: 6)
        XCTAssertEqual(c.nextTask(), .checkpoint(generation: 1, step: 10), "a stopping coordinator extends no lease")
        XCTAssertNil(c.nextTask(), "being written")
        XCTAssertEqual(sends(c.onCheckpointSaved(step: 10, path: "/ckpt/10.lz4")), [.checkpointWritten(CheckpointWritten(step: 10, path: "/ckpt/10.lz4"))])
        _ = c.onCheckpointsFlushed(1)
        XCTAssertEqual(c.stage, .training(1, step: 10))
        XCTAssertNil(c.nextTask(), "once")
        _ = c.onLease(Lease(generation: 1, leaseEnd: 20), now: 7)
        XCTAssertEqual(c.nextTask(), .train(generation: 1, from: 10, to: 20))
    }

    func testAWriteStillInFlightAtALeaseEndIsAwaitedAndReported() {
        var c = core()
        training(&c, assignment(1, lease: 8, every: 8))
        _ = c.nextTask()
        XCTAssertTrue(run(&c, 1, 0..<8)[8]!.contains(.saveCheckpoint(step: 8, phaseEnd: false)))
        _ = c.onTrained(1, step: 8)
        XCTAssertEqual(c.nextTask(), .awaitCheckpoints(generation: 1))
        _ = c.onCheckpointSaved(step: 8, path: "/ckpt/8.lz4")
        _ = c.onCheckpointsFlushed(1)
        XCTAssertNil(c.nextTask(), "nothing left in flight")

        var other = core()
        training(&other, assignment(1, rank: 1, lease: 10, every: 0))
        _ = other.nextTask()
        _ = run(&other, 1, 0..<10)
        _ = other.onTrained(1, step: 10)
        _ = other.onCheckpointNow(CheckpointNow(generation: 1, reason: "x"), now: 6)
        XCTAssertNil(other.nextTask(), "only rank 0 checkpoints")
    }

    func testCheckpointOutcomesReachTheCoordinatorOrTheLog() {
        var c = core()
        XCTAssertEqual(c.onCheckpointSaved(step: 8, path: "/ckpt/a.lz4"), [.send(.checkpointWritten(CheckpointWritten(step: 8, path: "/ckpt/a.lz4")))])
        XCTAssertEqual(c.onCheckpointFailed(step: 16, path: "/ckpt/tmp-16", error: "No space left on device"),
                       [.log("checkpoint of step 16 failed: /ckpt/tmp-16: No space left on device"),
                        .send(.checkpointFailed(CheckpointFailed(step: 16, path: "/ckpt/tmp-16", reason: "No space left on device")))])
    }

    func testHeartbeatsAverageTheLastTenSteps() {
        var c = core()
        training(&c, assignment(1, lease: 30))
        _ = c.nextTask()
        _ = run(&c, 1, 0..<9)
        XCTAssertEqual(c.health.computeSeconds, 0, "not before ten steps")
        XCTAssertEqual(c.health.step, 9)
        _ = run(&c, 1, 9..<10)
        XCTAssertEqual(c.health.computeSeconds, 0.01, accuracy: 1e-12)
        XCTAssertEqual(c.health.commSeconds, 0.002, accuracy: 1e-12)
        // 10 × 1000 bytes in 10 µs at W = 2: 1e9 B/s × 2(W−1)/W = 1 GB/s.
        XCTAssertEqual(c.health.allreduceGBs, 1, accuracy: 1e-9)
        guard case .heartbeat(let hb)? = sends(c.onTick(now: 10)).first else { return XCTFail("expected a heartbeat") }
        XCTAssertEqual(hb.step, 10)
        XCTAssertEqual(hb.generation, 1)
        XCTAssertEqual(hb.state, .running)
    }

    // MARK: new generations, failures, the fence's timeout

    func testANewerGenerationSupersedesTheRingInProgress() {
        var c = core()
        training(&c, assignment(1, lease: 30))
        XCTAssertEqual(c.nextTask(), .train(generation: 1, from: 0, to: 30))
        _ = run(&c, 1, 0..<4)
        XCTAssertEqual(c.onAssignment(assignment(0), now: 6), [], "an older assignment is ignored")
        XCTAssertFalse(c.isSuperseded(1))
        let b = assignment(2, start: 0, lease: 10)
        XCTAssertEqual(c.onAssignment(b, now: 6), [.abandonRing])
        XCTAssertTrue(c.isSuperseded(1))
        let ended = c.onTrainFailed(1, step: 4, reason: "abandoned")
        XCTAssertEqual(ended, [.log("generation 1 ended at step 4: superseded")], "no failure report for a superseded ring")
        XCTAssertEqual(c.nextTask(), .prepare(b))
    }

    func testANewerGenerationDuringTheFencePreparesIt() {
        var c = core()
        standby(&c)
        _ = c.onAssignment(assignment(1), now: 1)
        _ = c.nextTask()
        _ = c.onPrepared(1, now: 1)
        let b = assignment(2)
        _ = c.onAssignment(b, now: 2)
        _ = c.onGo(Go(generation: 1), now: 2)
        XCTAssertEqual(c.nextTask(), .prepare(b))
    }

    func testARingFailureIsReportedAndTheWorkerWaitsForTheNextGeneration() {
        var c = core()
        training(&c, assignment(1, lease: 30))
        _ = c.nextTask()
        _ = run(&c, 1, 0..<7)
        let ds = c.onTrainFailed(1, step: 7, reason: "timed out waiting for rank 1")
        XCTAssertEqual(sends(ds), [.failure(FailureReport(workerID: 3, generation: 1, step: 7, reason: "timed out waiting for rank 1"))])
        XCTAssertTrue(ds.contains(.leaveRing))
        XCTAssertEqual(c.health.state, .failed)
        XCTAssertNil(c.nextTask(), "the same generation is not run again")
        _ = c.onAssignment(assignment(1), now: 6)
        XCTAssertNil(c.nextTask())
        let b = assignment(2, start: 5, resume: "/ckpt/5.lz4")
        _ = c.onAssignment(b, now: 7)
        XCTAssertEqual(c.nextTask(), .prepare(b))
    }

    func testACheckpointThatDoesNotLoadIsReported() {
        var c = core()
        standby(&c)
        let a = assignment(1, start: 12, resume: "/ckpt/gone.lz4")
        _ = c.onAssignment(a, now: 1)
        _ = c.nextTask()
        let ds = c.onPrepareFailed(1, reason: "loading /ckpt/gone.lz4: no such file")
        XCTAssertEqual(sends(ds), [.failure(FailureReport(workerID: 3, generation: 1, step: 12, reason: "loading /ckpt/gone.lz4: no such file"))])
        XCTAssertEqual(c.stage, .standby)
        XCTAssertNil(c.nextTask())
    }

    func testARingThatCannotBeJoinedIsReported() {
        var c = core()
        standby(&c)
        _ = c.onAssignment(assignment(1), now: 1)
        _ = c.nextTask()
        _ = c.onPrepared(1, now: 1)
        _ = c.onGo(Go(generation: 1), now: 1)
        _ = c.nextTask()
        XCTAssertEqual(sends(c.onJoinFailed(1, reason: "joining the ring: refused")).count, 1)
        XCTAssertEqual(c.stage, .standby)
    }

    func testTheFenceGivesUpAfterItsTimeout() {
        var c = core(fence: 30)
        standby(&c)
        _ = c.onAssignment(assignment(1), now: 1)
        _ = c.nextTask()
        _ = c.onPrepared(1, now: 2)
        XCTAssertEqual(sends(c.onTick(now: 31)).filter { if case .failure = $0 { return true } else { return false } }, [])
        _ = c.onLease(Lease(generation: 1, leaseEnd: 10), now: 31)  // the coordinator is alive
        let ds = c.onTick(now: 32.5)
        guard case .failure(let f)? = sends(ds).first(where: { if case .failure = $0 { return true } else { return false } }) else {
            return XCTFail("expected a failure report, got \(ds)")
        }
        XCTAssertEqual(f.generation, 1)
        XCTAssertTrue(f.reason.contains("no go"), f.reason)
        XCTAssertEqual(c.stage, .standby)
        _ = c.onGo(Go(generation: 1), now: 33)
        XCTAssertNil(c.nextTask(), "a late go does not revive the generation given up on")
    }

    func testANonFiniteLossIsFatalForTheJobAndTheCoordinatorHearsOfIt() {
        var c = core()
        training(&c, assignment(1, lease: 30))
        _ = c.nextTask()
        _ = run(&c, 1, 0..<6)
        let ds = c.onFatal(1, step: 6, reason: "non-finite loss (clip = nan, total = nan)")
        XCTAssertEqual(sends(ds), [.failure(FailureReport(workerID: 3, generation: 1, step: 6,
                                                          reason: "non-finite loss (clip = nan, total = nan)", fatal: true))])
        XCTAssertEqual(c.health.state, .failed)
        XCTAssertEqual(c.nextTask(), .exit(code: 1, reason: "error: non-finite loss (clip = nan, total = nan)"))
    }

    // MARK: stopping

    func testAStopEndsTheWorkerWhereverItIs() {
        var c = core()
        _ = c.onStart(hello, now: 0)
        XCTAssertEqual(c.onStop(Stop(reason: "the job is done"), now: 0.1), [.abandonRing])
        XCTAssertEqual(c.nextTask(), .exit(code: 0, reason: "stopped: the job is done"))

        var d = core()
        training(&d, assignment(1, lease: 30))
        _ = d.nextTask()
        _ = run(&d, 1, 0..<3)
        _ = d.onStop(Stop(reason: "the coordinator is stopping"), now: 6)
        XCTAssertTrue(d.isSuperseded(1), "the step loop stops before its next step")
        XCTAssertEqual(d.onTrained(1, step: 3), [], "no final upload for a stopped generation")
        XCTAssertEqual(d.nextTask(), .exit(code: 0, reason: "stopping: the coordinator is stopping"))
    }

    func testAStopAfterTheCheckpointItAskedFor() {
        var c = core()
        training(&c, assignment(1, lease: 30, every: 0))
        _ = c.nextTask()
        _ = run(&c, 1, 0..<3)
        _ = c.onCheckpointNow(CheckpointNow(generation: 1, reason: "the coordinator is stopping"), now: 6)
        XCTAssertTrue(run(&c, 1, 3..<4)[4]!.contains(.saveCheckpoint(step: 4, phaseEnd: false)))
        XCTAssertEqual(sends(c.onCheckpointSaved(step: 4, path: "/ckpt/4.lz4")), [.checkpointWritten(CheckpointWritten(step: 4, path: "/ckpt/4.lz4"))])
        _ = c.onStop(Stop(reason: "the coordinator is stopping"), now: 7)
        XCTAssertEqual(c.onTrainFailed(1, step: 4, reason: "abandoned"), [.log("generation 1 ended at step 4: superseded")])
        XCTAssertEqual(c.nextTask(), .exit(code: 0, reason: "stopping: the coordinator is stopping"))
    }

    func testAStopRequestedHereTellsTheCoordinatorOnce() {
        var c = core()
        standby(&c)
        XCTAssertEqual(c.onStopRequested("signal 15"), [.send(.leave(Leave(workerID: 3, reason: "signal 15"))), .abandonRing])
        XCTAssertEqual(c.onStopRequested("signal 15"), [.abandonRing], "the goodbye is said once")
        XCTAssertEqual(c.nextTask(), .exit(code: 0, reason: "stopping: signal 15"))

        var d = core()
        _ = d.onStart(hello, now: 0)
        XCTAssertEqual(d.onStopRequested("signal 2"), [.abandonRing], "nobody to say goodbye to before the welcome")
    }

    func testAStopOutlastsTheSilenceLimit() {
        var c = core(silence: 10)
        standby(&c)
        _ = c.onStop(Stop(reason: "done"), now: 1)
        _ = c.onTick(now: 30)
        XCTAssertNil(c.lost, "a stopping worker does not report the coordinator lost")
        XCTAssertEqual(c.nextTask(), .exit(code: 0, reason: "stopping: done"))
    }
}
