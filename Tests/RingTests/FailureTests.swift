import Basics
import Foundation
import Ring
import Wire
import XCTest

/// Timeouts, abandonment, generations and misuse: every failure is bounded and named.
final class FailureTests: XCTestCase {
    func testMissingPeerTimesOutWithinTheConfiguredTime() {
        let timeout = 0.5
        let elapsed = Shared([Double](repeating: 0, count: 3))
        let after = Shared([RingError?](repeating: nil, count: 3))
        let errors = runRing(3, options: .with(segmentBytes: 64, timeout: timeout)) { r, g in
            if r == 2 { return }  // joins the group, then never takes part
            var x = rankInput(r, 1000)
            let start = Deadline.now()
            defer { elapsed.values[r] = Deadline.now().seconds(since: start) }
            do { try x.withUnsafeMutableBufferPointer { try g.allReduce($0) } } catch {
                do { try g.barrier() } catch { after.values[r] = error as? RingError }
                throw error
            }
        }
        for r in 0..<2 {
            guard case .timedOut(_, let seconds)? = errors[r] else { return XCTFail("rank \(r): \(String(describing: errors[r]))") }
            XCTAssertEqual(seconds, timeout)
            XCTAssertGreaterThanOrEqual(elapsed.values[r], timeout * 0.9)
            XCTAssertLessThan(elapsed.values[r], timeout * 2 + 1.5, "rank \(r) took too long to give up")
            guard case .closed? = after.values[r] else { return XCTFail("a failed group must refuse later calls") }
        }
        XCTAssertNil(errors[2])
    }

    func testAbandonStopsAWaitFromAnotherThread() {
        let ring = MemoryRing(worldSize: 2)
        let holder = Shared([RingGroup?](repeating: nil, count: 1))
        let waiting = ReceiveReportingTransport(ring.transport(rank: 0))
        let start = Shared([Deadline.now()])
        let errors = runThreads(3) { who in
            switch who {
            case 0:
                let g = try RingGroup(transport: waiting, generation: 1, options: .with(segmentBytes: 64, timeout: 30))
                holder.values[0] = g
                waiting.armed = true  // rank 1 never sends: the all-reduce's first receive waits
                var x: [Float] = [1, 2, 3]
                try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
            case 1:
                _ = try RingGroup(transport: ring.transport(rank: 1), generation: 1, options: .with(segmentBytes: 64, timeout: 30))
            default:
                XCTAssertEqual(waiting.receiving.wait(timeout: .now() + 10), .success)
                start.values[0] = Deadline.now()
                holder.values[0]!.abandon()
            }
        }
        XCTAssertEqual(errors[0], .abandoned)
        XCTAssertLessThan(Deadline.now().seconds(since: start.values[0]), 5)
    }

    func testStaleGenerationIsDroppedAndNewerGenerationEndsTheGroup() throws {
        let ring = MemoryRing(worldSize: 2)
        let intruder = ring.transport(rank: 0)
        let junk: [Float] = [99, 99]
        // Left over from generation 4: dropped. Then a message from generation 6: the end.
        try junk.withUnsafeBytes {
            try intruder.send($0, to: 1, tag: FrameHeader(type: .ringAllReduce, generation: 4, step: 0, collective: 0, chunk: 0), deadline: .after(seconds: 1))
        }
        let drops = Shared([Int](repeating: -1, count: 2))
        let sums = Shared([[Float]](repeating: [], count: 2))
        let errors = runThreads(2) { r in
            let g = try RingGroup(transport: ring.transport(rank: r), generation: 5, options: .with(segmentBytes: 64))
            var x: [Float] = [Float(r + 1), 10]
            try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
            sums.values[r] = x
            drops.values[r] = g.drops[.stale]
            try g.barrier()
            if r == 0 {
                try junk.withUnsafeBytes {
                    try intruder.send($0, to: 1, tag: FrameHeader(type: .ringAllReduce, generation: 6, step: 0, collective: 0, chunk: 0), deadline: .after(seconds: 1))
                }
                return
            }
            var more = junk
            try more.withUnsafeMutableBufferPointer { try g.allReduce($0) }
        }
        XCTAssertEqual(sums.values, [[3, 20], [3, 20]])
        XCTAssertEqual(drops.values, [0, 1])
        XCTAssertNil(errors[0])
        XCTAssertEqual(errors[1], .generationChanged(ours: 5, seen: 6))
    }

    func testRanksThatDisagreeOnTheCollectiveFailLoudly() {
        let errors = runRing(2, options: .with(segmentBytes: 64, timeout: 5)) { r, g in
            var x: [Float] = [1, 2, 3]
            if r == 0 { try x.withUnsafeMutableBufferPointer { try g.allReduce($0) } } else { try g.barrier() }
        }
        for r in 0..<2 {
            guard case .protocolViolation? = errors[r] else { return XCTFail("rank \(r): \(String(describing: errors[r]))") }
        }
    }

    func testInvalidArgumentsAreRefusedBeforeSendingAndTheGroupStaysUsable() {
        let out = Shared([[Float]](repeating: [], count: 3))
        let errors = runRing(3) { r, g in
            var x: [Float] = [1, 2]
            var big = [Float](repeating: 0, count: 10)
            XCTAssertThrowsError(try x.withUnsafeBufferPointer { l in
                try big.withUnsafeMutableBufferPointer { try g.allGather(local: l, counts: [2, 2], into: $0) }
            }) { XCTAssertEqual($0 as? RingError, .invalidArgument("2 counts for 3 ranks")) }
            XCTAssertThrowsError(try x.withUnsafeBufferPointer { l in
                try big.withUnsafeMutableBufferPointer { try g.allGather(local: l, counts: [2, 2, 2], into: $0) }
            })
            XCTAssertThrowsError(try x.withUnsafeMutableBufferPointer { try g.broadcast($0, root: 3) })
            try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
            out.values[r] = x
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        XCTAssertEqual(out.values, Array(repeating: [3, 6], count: 3))
    }

    func testOptionsAreValidated() {
        var o = RingOptions()
        o.segmentBytes = 6
        XCTAssertThrowsError(try o.validate())
        o.segmentBytes = 32 << 20
        XCTAssertThrowsError(try o.validate(), "segments stay well below 32 MiB")
        o = RingOptions()
        o.timeout = 0
        XCTAssertThrowsError(try o.validate())
    }
}

/// A rank's transport that reports, once armed, when a receive begins (the rank is then about
/// to wait for a message), so another thread can act on that event instead of after a pause.
final class ReceiveReportingTransport: RingTransport, RingTransportSetup, @unchecked Sendable {
    let inner: MemoryRingTransport
    /// Signalled at the start of each receive once `armed` (set on the rank's own thread).
    let receiving = DispatchSemaphore(value: 0)
    var armed = false

    init(_ inner: MemoryRingTransport) { self.inner = inner }

    var rank: Int { inner.rank }
    var worldSize: Int { inner.worldSize }
    var directEndpoint: String? { inner.directEndpoint }
    var drops: DropCounts { inner.drops }

    func connectDirect(_ endpoints: [String], generation: UInt64, ringNeighboursOnly: Bool, deadline: Deadline) throws {
        try inner.connectDirect(endpoints, generation: generation, ringNeighboursOnly: ringNeighboursOnly, deadline: deadline)
    }

    func peersReady() -> RingTransportCapabilities { inner.peersReady() }

    func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: FrameHeader, deadline: Deadline) throws {
        try inner.send(bytes, to: peer, tag: tag, deadline: deadline)
    }

    func receive(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline, forward: Forward?,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        if armed { receiving.signal() }
        try inner.receive(from: peer, tag: tag, byteCount: byteCount, deadline: deadline, forward: forward, consume)
    }

    func exchange(
        _ outgoing: UnsafeRawBufferPointer, to next: Int, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, from prev: Int, tag receiveTag: FrameHeader?,
        deadline: Deadline
    ) throws -> UnsafeRawPointer? {
        try exchangeBySendAndReceive(outgoing, to: next, tag: sendTag, incoming, from: prev, tag: receiveTag, deadline: deadline)
    }

    func awaitSendsReleased(deadline: Deadline) throws { try inner.awaitSendsReleased(deadline: deadline) }
    func abandon() { inner.abandon() }
    func close(lingerMilliseconds: Int) { inner.close(lingerMilliseconds: lingerMilliseconds) }
}
