import Basics
import Control
import Foundation
@testable import Worker
import XCTest

/// The mailbox between the control thread and the compute thread, with real threads: events
/// wake the waiting compute thread, messages queue in order, a newer generation calls the
/// abandon hook.
final class MailboxTests: XCTestCase {
    let welcome = Welcome(workerID: 5, config: "yaml", configHash: "c1", heartbeatSeconds: 1)

    func mailbox() -> Mailbox {
        Mailbox(core: WorkerCore(settings: WorkerCore.Settings(coordinator: "tcp://c:1"), now: 0)) { _ in }
    }

    func testAnEventWakesTheWaitingComputeThreadWithinASlice() {
        let m = mailbox()
        let got = Locked<WorkerCore.Task?>(nil)
        let done = expectation(description: "task")
        let t = Thread {
            let task = m.nextTask(slice: 30)  // a slice far longer than the test: only the bell can end the wait
            got.withLock { $0 = task }
            done.fulfill()
        }
        t.start()
        m.handle { $0.onWelcome(self.welcome, now: 0) }
        wait(for: [done], timeout: 10)
        XCTAssertEqual(got.withLock { $0 }, .openData(welcome))
    }

    func testWorkAlreadyThereIsTakenWithoutWaiting() {
        let m = mailbox()
        m.handle { $0.onStopRequested("signal 15") }
        let start = MonotonicClock.now()
        XCTAssertEqual(m.nextTask(slice: 30), .exit(code: 0, reason: "stopped: signal 15"))
        XCTAssertLessThan(MonotonicClock.now() - start, 10)
    }

    func testMessagesQueueInOrderAndTheAbandonHookRunsForANewerGeneration() {
        let m = mailbox()
        let abandoned = Locked(0)
        m.setAbandon { abandoned.withLock { $0 += 1 } }
        let hello = WorkerHello(version: ProclipInfo.version, host: "h", pid: 1, threads: 1, dataEndpoint: "tcp://h:2", configHash: nil)
        m.handle { $0.onStart(hello, now: 0) }
        m.handle { $0.onWelcome(self.welcome, now: 0) }
        m.handle { $0.onTick(now: 1) }
        let a = Assignment(generation: 1, rank: 0, world: 1, endpoints: ["tcp://h:2"], startStep: 0, resume: nil, leaseEnd: 5,
                           totalSteps: 10, checkpoint: CheckpointPolicy(directory: "", every: 0, keep: 1))
        m.handle { $0.onAssignment(a, now: 1) }
        m.handle { $0.onAssignment(a, now: 1) }  // the same generation again: no abandon
        XCTAssertEqual(abandoned.withLock { $0 }, 1)
        let out = m.takeOutbox().map { o -> String in
            if case .message(let w) = o {
                switch w {
                case .register: return "register"
                case .heartbeat: return "heartbeat"
                default: return "other"
                }
            }
            return "data"
        }
        XCTAssertEqual(out, ["register", "heartbeat"])
        XCTAssertTrue(m.outboxIsEmpty)
    }

    func testEventsFromManyThreadsAreSerialised() {
        let m = mailbox()
        m.handle { $0.onWelcome(self.welcome, now: 0) }
        let threads = 4, each = 500
        let group = DispatchGroup()
        for k in 0..<threads {
            group.enter()
            let t = Thread {
                for i in 0..<each {
                    m.handle { $0.onLease(Lease(generation: 0, leaseEnd: k * each + i), now: 1) }
                    m.post(.params(ParamsHeader(step: i, phase: 0, final: false, bytes: 0, chunks: 1), []))
                }
                group.leave()
            }
            t.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(m.takeOutbox().count, threads * each)
    }
}
