import Basics
import Foundation
import XCTest

/// The event count that wakes the worker's compute thread: no ring is lost, every wait ends by
/// its deadline.
final class DoorbellTests: XCTestCase {
    func testARingBetweenTheTicketAndTheWaitIsNotLost() {
        let bell = Doorbell()
        let ticket = bell.ticket()
        bell.ring()
        let start = MonotonicClock.now()
        XCTAssertTrue(bell.wait(after: ticket, until: .after(seconds: 30)))
        XCTAssertLessThan(MonotonicClock.now() - start, 10)
    }

    func testAWaitWithoutARingEndsAtItsDeadline() {
        let bell = Doorbell()
        let start = MonotonicClock.now()
        XCTAssertFalse(bell.wait(after: bell.ticket(), until: .after(seconds: 0.2)))
        let waited = MonotonicClock.now() - start
        XCTAssertGreaterThanOrEqual(waited, 0.2)
        XCTAssertLessThan(waited, 10)
    }

    func testARingFromAnotherThreadWakesTheWaiter() {
        let bell = Doorbell()
        let ticket = bell.ticket()
        let rung = expectation(description: "woken")
        let waiter = Thread {
            if bell.wait(after: ticket, until: .after(seconds: 30)) { rung.fulfill() }
        }
        waiter.start()
        bell.ring()
        wait(for: [rung], timeout: 10)
    }
}

/// Deadlines: arithmetic on the monotonic clock, and the bounds a wait is given.
final class DeadlineTests: XCTestCase {
    func testRemainingMillisecondsAreCappedAndNeverNegative() {
        XCTAssertEqual(Deadline.after(seconds: -1).remainingMilliseconds(), 0)
        XCTAssertTrue(Deadline.after(seconds: -1).hasPassed)
        XCTAssertEqual(Deadline.after(seconds: 100).remainingMilliseconds(cap: 50), 50)
        let ms = Deadline.after(seconds: 2).remainingMilliseconds()
        XCTAssertTrue((1...2000).contains(ms), "\(ms)")
    }

    func testMonitorWaitEndsAtTheDeadline() {
        let m = Monitor()
        let start = MonotonicClock.now()
        let woke = m.withLock { m.wait(until: Deadline.after(seconds: 0.1)) }
        XCTAssertFalse(woke)
        XCTAssertGreaterThanOrEqual(MonotonicClock.now() - start, 0.1)
    }
}
