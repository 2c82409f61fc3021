import CZmq
import XCTest
@testable import Wire
import Basics

final class SocketTests: XCTestCase {
    /// A connected PUSH → PULL pair over inproc.
    func pair(_ context: ZmqContext, name: String) throws -> (push: ZmqSocket, pull: ZmqSocket) {
        let pull = try context.socket(.pull)
        try pull.bind("inproc://\(name)")
        let push = try context.socket(.push)
        try push.connect("inproc://\(name)")
        return (push, pull)
    }

    func receiveWithin(_ socket: ZmqSocket, _ message: ZmqMessage, milliseconds: Int = 2000) throws -> Bool {
        let deadline = Deadline.after(seconds: Double(milliseconds) / 1000)
        while !deadline.hasPassed {
            if try socket.receive(message) { return true }
            _ = try socket.waitReadable(milliseconds: deadline.remainingMilliseconds(cap: 50))
        }
        return false
    }

    func testOptionsAreSetExplicitly() throws {
        let context = try ZmqContext()
        let s = try context.socket(.router)
        XCTAssertEqual(try s.intOption(ZMQ_LINGER), 0, "sockets start with linger 0, not ZeroMQ's -1")
        try s.set(.sendHighWaterMark(0))
        try s.set(.receiveHighWaterMark(12345))
        try s.set(.heartbeat(interval: 100, timeout: 300, ttl: 300))
        XCTAssertEqual(try s.intOption(ZMQ_SNDHWM), 0)
        XCTAssertEqual(try s.intOption(ZMQ_RCVHWM), 12345)
        XCTAssertEqual(try s.intOption(ZMQ_HEARTBEAT_IVL), 100)
        XCTAssertThrowsError(try s.set(.routingId([]))) { XCTAssertEqual($0 as? WireError, .invalidArgument("routing id of 0 bytes")) }
        XCTAssertThrowsError(try s.bind("nonsense://x")) { XCTAssertNotNil(($0 as? WireError)?.code) }
    }

    func testRouterMandatoryReportsUnroutableSends() throws {
        let context = try ZmqContext()
        let router = try context.socket(.router)
        try router.bind("inproc://router")
        let m = ZmqMessage()
        try m.setCopy(of: UnsafeRawBufferPointer(start: nil, count: 0))
        XCTAssertTrue(try router.send(m), "without ROUTER_MANDATORY an unknown peer is dropped silently")
        try router.set(.routerMandatory(true))
        try Array("nobody".utf8).withUnsafeBytes { try m.setCopy(of: $0) }
        XCTAssertThrowsError(try router.send(m, more: true)) { XCTAssertEqual(($0 as? WireError)?.code, EHOSTUNREACH) }
    }

    func testFramesRoundTripAndMalformedOnesAreDroppedAndCounted() throws {
        let context = try ZmqContext()
        let (push, pull) = try pair(context, name: "frames")
        let type = MessageType(rawValue: 0x21)
        var validator = FrameValidator(accepting: [(type, maxPayload: 64)])
        let h = ZmqMessage(), p = ZmqMessage(), scratch = ZmqMessage()
        func sendRaw(_ frames: [[UInt8]]) throws {
            for (i, f) in frames.enumerated() {
                try f.withUnsafeBytes { try p.setCopy(of: $0) }
                XCTAssertTrue(try push.send(p, more: i < frames.count - 1))
            }
        }
        var good = [UInt8](repeating: 0, count: 32)
        let header = FrameHeader(type: type, generation: 3, step: 4, collective: 5, chunk: 6)
        good.withUnsafeMutableBytes { header.encode(into: $0.baseAddress!) }
        try sendRaw([Array(good[0..<20]), [1, 2]])        // truncated header
        try sendRaw([good])                                // no payload frame
        try sendRaw([good, [1], [2]])                      // an extra frame
        try sendRaw([good, [UInt8](repeating: 0, count: 65)])  // payload too large
        try sendRaw([[UInt8](repeating: 0xFF, count: 32), []])  // garbage
        try Array("payload".utf8).withUnsafeBytes { try p.setCopy(of: $0) }
        XCTAssertTrue(try push.sendFrame(header, payload: p, scratch: scratch))

        var drops: [DropReason] = []
        let deadline = Deadline.after(seconds: 5)
        while !deadline.hasPassed {
            switch try pull.receiveFrame(header: h, payload: p, validator: &validator) {
            case .none: _ = try pull.waitReadable(milliseconds: 50)
            case .dropped(let r): drops.append(r)
            case .frame(let got):
                XCTAssertEqual(got, header)
                XCTAssertEqual(Array(UnsafeRawBufferPointer(p.bytes)), Array("payload".utf8))
                XCTAssertEqual(drops, [.headerTruncated, .missingPayload, .extraFrames, .payloadTooLarge, .badMagic])
                XCTAssertEqual(validator.drops.total, 5)
                return
            }
        }
        XCTFail("the valid frame did not arrive; drops so far: \(drops)")
    }

    func testZeroCopyBorrowIsReturnedAfterDelivery() throws {
        let context = try ZmqContext()
        let (push, pull) = try pair(context, name: "borrow")
        let ledger = BorrowLedger()
        let source = UnsafeMutableBufferPointer<Float>.allocate(capacity: 100_000)
        defer { source.deallocate() }
        for i in 0..<source.count { source[i] = Float(i) }
        let m = ZmqMessage()
        try m.setBorrowed(UnsafeRawBufferPointer(source), ledger: ledger)
        XCTAssertEqual(ledger.outstandingCount, 1)
        XCTAssertTrue(try push.send(m))
        let got = ZmqMessage()
        XCTAssertTrue(try receiveWithin(pull, got))
        XCTAssertEqual(got.count, 400_000)
        XCTAssertEqual(got.bytes.load(fromByteOffset: 4 * 99_999, as: Float.self), 99_999)
        got.clear()  // inproc passes the content itself: the loan ends when the receiver lets go
        try ledger.awaitIdle(deadline: .after(seconds: 5))
        XCTAssertEqual(ledger.outstandingCount, 0)
    }

    func testOwnedBufferIsReleasedByZeroMQ() throws {
        weak var watch: OwnedBuffer?
        do {
            let context = try ZmqContext()
            let (push, pull) = try pair(context, name: "owned")
            let m = ZmqMessage()
            do {
                let buffer = OwnedBuffer(count: 1 << 16)
                memset(buffer.base, 7, buffer.count)
                watch = buffer
                try m.setOwned(buffer)
            }
            XCTAssertNotNil(watch, "ZeroMQ holds the buffer")
            XCTAssertTrue(try push.send(m))
            let got = ZmqMessage()
            XCTAssertTrue(try receiveWithin(pull, got))
            XCTAssertEqual(got.bytes.load(fromByteOffset: 100, as: UInt8.self), 7)
            got.clear()
        }
        XCTAssertNil(watch, "released by the free callback")
    }

    func testPollerReportsWhichSocketIsReady() throws {
        let context = try ZmqContext()
        let (pushA, pullA) = try pair(context, name: "poll-a")
        let (_, pullB) = try pair(context, name: "poll-b")
        let poller = try Poller([pullA, pullB])
        XCTAssertEqual(try poller.poll(milliseconds: 0), 0)
        let m = ZmqMessage()
        try [UInt8(1)].withUnsafeBytes { try m.setCopy(of: $0) }
        XCTAssertTrue(try pushA.send(m))
        XCTAssertEqual(try poller.poll(milliseconds: 2000), 1)
        XCTAssertTrue(poller.isReadable(0))
        XCTAssertFalse(poller.isReadable(1))
        XCTAssertThrowsError(try poller.poll(milliseconds: -1), "every wait is bounded")
    }

    func testTcpWildcardPortAndBoundedWait() throws {
        let context = try ZmqContext()
        let pull = try context.socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint()
        XCTAssertTrue(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"), endpoint)
        let start = Deadline.now()
        XCTAssertFalse(try pull.waitReadable(milliseconds: 100))
        let waited = Deadline.now().seconds(since: start)
        XCTAssertGreaterThanOrEqual(waited, 0.09)
        XCTAssertLessThan(waited, 2)
    }

    func testCurveEncryptedConnection() throws {
        XCTAssertTrue(CurveKeyPair.isAvailable, "libzmq on this machine is built with CURVE")
        let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate()
        XCTAssertEqual(server.publicKey.utf8.count, 40)
        XCTAssertNotEqual(server, client)
        let context = try ZmqContext()
        let pull = try context.socket(.pull)
        try pull.set(.curveServer(secretKey: server.secretKey))
        try pull.bind("tcp://127.0.0.1:*")
        let push = try context.socket(.push)
        try push.set(.curveClient(serverKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey))
        try push.connect(try pull.lastEndpoint())
        let m = ZmqMessage()
        try Array("sealed".utf8).withUnsafeBytes { try m.setCopy(of: $0) }
        XCTAssertTrue(try push.send(m))
        XCTAssertTrue(try receiveWithin(pull, m))
        XCTAssertEqual(Array(UnsafeRawBufferPointer(m.bytes)), Array("sealed".utf8))

        // A client that does not know the server's key never gets a message through.
        let impostor = try context.socket(.push)
        let wrong = try CurveKeyPair.generate()
        try impostor.set(.curveClient(serverKey: wrong.publicKey, publicKey: client.publicKey, secretKey: client.secretKey))
        try impostor.connect(try pull.lastEndpoint())
        try Array("forged".utf8).withUnsafeBytes { try m.setCopy(of: $0) }
        XCTAssertTrue(try impostor.send(m))
        XCTAssertFalse(try receiveWithin(pull, m, milliseconds: 300))
    }
}
