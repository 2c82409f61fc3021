import Foundation
import Ring
import Wire
import XCTest

/// A worker keeps its published ring endpoint across generations: after a group closes (its
/// listener with it) the rank binds the same endpoint again, with a fresh direct listener, and the
/// next generation forms — also after a generation that was abandoned.
final class RebindTests: XCTestCase {
    func testRankRebindsItsEndpointForTheNextGeneration() throws {
        let first = [try RingListener(bind: "tcp://127.0.0.1:*"), try RingListener(bind: "tcp://127.0.0.1:*")]
        let endpoints = first.map(\.endpoint)
        final class Results: @unchecked Sendable {
            private let lock = NSLock()
            private var _errors: [String] = []
            private var _sums: [[Float]] = []
            func add(error: String) { lock.lock(); _errors.append(error); lock.unlock() }
            func add(sum: [Float]) { lock.lock(); _sums.append(sum); lock.unlock() }
            var errors: [String] { lock.lock(); defer { lock.unlock() }; return _errors }
            var sums: [[Float]] { lock.lock(); defer { lock.unlock() }; return _sums }
        }
        let results = Results()
        nonisolated(unsafe) let listeners = first
        // The fence the coordinator keeps (bound, then go): no rank connects for a generation
        // while its peer still listens with the previous one's sockets, which would take the
        // hello and drop it on closing.
        let fence = Fence(parties: 2)
        let rank: @Sendable (Int) -> Void = { r in
            var listener = listeners[r]
            for generation in 1...3 {
                guard fence.pass(timeout: 30) else {
                    results.add(error: "rank \(r) generation \(generation): the peer never reached the fence")
                    return
                }
                do {
                    let g = try RingGroup(listener: listener, rank: r, worldSize: 2, successor: endpoints[(r + 1) % 2],
                                          generation: UInt64(generation))
                    var x: [Float] = [Float(r + 1), Float(generation)]
                    try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
                    results.add(sum: x)
                    if generation == 2 { g.abandon() }
                    g.close()
                    listener = try RingListener(bind: endpoints[r], direct: "tcp://127.0.0.1:*")
                } catch {
                    results.add(error: "rank \(r) generation \(generation): \(error)")
                    return
                }
            }
        }
        let otherDone = DispatchSemaphore(value: 0)
        let other = Thread {
            rank(1)
            otherDone.signal()
        }
        other.start()
        rank(0)
        XCTAssertEqual(otherDone.wait(timeout: .now() + 60), .success, "rank 1 finished")
        XCTAssertEqual(results.errors, [])
        XCTAssertEqual(results.sums.count, 6)
        XCTAssertTrue(results.sums.allSatisfy { $0[0] == 3 }, "\(results.sums)")
    }
}

/// Parties pass together, round after round; a party waits at most `timeout` seconds.
final class Fence: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var arrived = 0
    private var round = 0

    init(parties: Int) { self.parties = parties }

    func pass(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let mine = round
        arrived += 1
        if arrived == parties {
            arrived = 0
            round += 1
            condition.broadcast()
            return true
        }
        let deadline = Date().addingTimeInterval(timeout)
        while round == mine {
            if !condition.wait(until: deadline) { return round != mine }
        }
        return true
    }
}
