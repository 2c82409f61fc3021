import Foundation
import Ring
import Wire
import XCTest

/// The ZeroMQ transport inside one process (a thread per rank): malformed and stale traffic on a
/// rank's ring socket is dropped and counted while the collective still completes.
final class ZmqTransportTests: XCTestCase {
    func testGarbageAndStaleFramesOnTheRingSocketAreDroppedAndCounted() throws {
        let w = 3
        var options = RingOptions.with(segmentBytes: 4096, timeout: 20)
        options.directMaxWorld = 0  // all traffic on the ring sockets
        let listeners = try (0..<w).map { _ in try RingListener(bind: "tcp://127.0.0.1:*", options: options) }
        let endpoints = listeners.map(\.endpoint)

        // An intruder connects to rank 1's ring socket and sends junk before anything else.
        let context = try ZmqContext()
        let intruder = try context.socket(.push)
        try intruder.connect(endpoints[1])
        let m = ZmqMessage(), scratch = ZmqMessage()
        for junk in [[UInt8](repeating: 0xAB, count: 7), Array("not a header at all, but 32 byte".utf8)] {
            try junk.withUnsafeBytes { try m.setCopy(of: $0) }
            XCTAssertTrue(try intruder.send(m, more: true))
            try m.setCopy(of: UnsafeRawBufferPointer(start: nil, count: 0))
            XCTAssertTrue(try intruder.send(m))
        }
        let stale = FrameHeader(type: .ringAllReduce, generation: 6, step: 0, collective: 0, chunk: 0)
        try [Float](repeating: 9, count: 4).withUnsafeBytes { try m.setCopy(of: $0) }
        XCTAssertTrue(try intruder.sendFrame(stale, payload: m, scratch: scratch))
        // The junk reaches rank 1 first: closing the intruder with a linger, its context's
        // shutdown returns once every queued frame has been written to the connection.
        try intruder.set(.linger(milliseconds: 5000))
        intruder.close()
        context.terminate()

        let listenerBox = Shared(listeners.map { Optional($0) })
        let out = Shared([[Float]](repeating: [], count: w))
        let drops = Shared([DropCounts](repeating: DropCounts(), count: w))
        let errors = runThreads(w) { r in
            let g = try RingGroup(listener: listenerBox.values[r]!, rank: r, worldSize: w, successor: endpoints[(r + 1) % w], generation: 7)
            var x = rankInput(r, 5000)
            try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
            try g.barrier()
            out.values[r] = x
            drops.values[r] = g.drops
            g.close()
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        let want = (0..<5000).map { expectedSum(w, $0) }
        for r in 0..<w { XCTAssertNil(firstMismatch(out.values[r], want), "rank \(r)") }
        XCTAssertEqual(drops.values[1][.headerTruncated], 1)
        XCTAssertEqual(drops.values[1][.badMagic], 1)
        XCTAssertEqual(drops.values[1][.stale], 1)
        XCTAssertEqual(drops.values[0].total + drops.values[2].total, 0)
    }

    func testStreamsBindDerivedEndpoints() throws {
        var options = RingOptions()
        options.streams = 3
        let path = "/tmp/proclip-ring-test-\(getpid())"
        let ipc = try RingListener(bind: "ipc://\(path)", options: options)
        defer { RingListener.removeLeftovers(of: "ipc://\(path)", streams: 3) }
        XCTAssertEqual(ipc.endpoint, "ipc://\(path),ipc://\(path).1,ipc://\(path).2")
        XCTAssertEqual(ipc.directEndpoint, "ipc://\(path).direct")
        let tcp = try RingListener(bind: "tcp://127.0.0.1:*", options: options)
        let parts = tcp.endpoint.split(separator: ",")
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(Set(parts).count, 3, "each stream has its own port")
        XCTAssertThrowsError(try RingListener(bind: "inproc://ring", options: options))
    }

    func testMismatchedOptionsAreRefusedAtHello() throws {
        var a = RingOptions.with(segmentBytes: 4096, timeout: 5)
        a.connectTimeout = 5
        var b = a
        b.segmentBytes = 8192
        let listeners = [try RingListener(bind: "tcp://127.0.0.1:*", options: a), try RingListener(bind: "tcp://127.0.0.1:*", options: b)]
        let endpoints = listeners.map(\.endpoint)
        let box = Shared(listeners.map { Optional($0) })
        let errors = runThreads(2) { r in
            _ = try RingGroup(listener: box.values[r]!, rank: r, worldSize: 2, successor: endpoints[1 - r], generation: 1)
        }
        for r in 0..<2 {
            guard case .protocolViolation(let text)? = errors[r] else { return XCTFail("rank \(r): \(String(describing: errors[r]))") }
            XCTAssertTrue(text.contains("hello"), text)
        }
    }
}
