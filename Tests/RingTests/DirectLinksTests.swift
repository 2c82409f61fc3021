import Basics
import CStreams
import Foundation
@testable import Ring
import Wire
import XCTest

/// Waits until the other end of `fd` has closed it — the connection reads end-of-stream or a
/// reset; the tests never send anything else on these connections — for at most `seconds`.
func waitUntilClosedByPeer(_ fd: Int32, seconds: Double = 10) -> Bool {
    let deadline = Deadline.after(seconds: seconds)
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while true {
        let ms = deadline.remainingMilliseconds(cap: 1000)
        if ms == 0 { return false }
        if poll(&p, 1, Int32(ms)) == 1 {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)
        }
    }
}

/// Waits until more than `count` bytes are queued for reading on `fd`, checking every
/// millisecond for at most `seconds`.
func waitUntilQueued(_ fd: Int32, moreThan count: Int, seconds: Double = 10) -> Bool {
    let deadline = Deadline.after(seconds: seconds)
    while !deadline.hasPassed {
        var queued: Int32 = 0
        if ioctl(fd, UInt(FIONREAD), &queued) == 0 && Int(queued) > count { return true }
        usleep(1000)
    }
    return false
}

/// The direct links' own checks, against a rank faked with raw sockets: connections that do
/// not introduce themselves properly are counted and closed while the real peer is accepted;
/// frames arrive in order and in place; a malformed frame fails the receive and closes the
/// connection, without crashing or hanging.
final class DirectLinksTests: XCTestCase {
    /// A blocking-enough client connection to `endpoint` (loopback: completes at once).
    func connect(_ endpoint: String) throws -> Int32 {
        let (host, port) = try DirectLinks.hostAndPort(endpoint)
        let fd = proclip_tcp_connect(host, Int32(port))
        XCTAssertGreaterThanOrEqual(fd, 0)
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        XCTAssertEqual(poll(&p, 1, 5000), 1)
        XCTAssertEqual(proclip_connect_result(fd), 0)
        return fd
    }

    /// Writes a frame: payload length, the 32 header bytes `header` (or as given), the payload.
    func write(_ fd: Int32, length: UInt32, header: [UInt8], payload: [UInt8] = []) {
        var bytes = withUnsafeBytes(of: length.littleEndian) { Array($0) } + header + payload
        let n = bytes.withUnsafeMutableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        XCTAssertEqual(n, bytes.count)
    }

    func encoded(_ h: FrameHeader) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: FrameHeader.byteCount)
        b.withUnsafeMutableBytes { h.encode(into: $0.baseAddress!) }
        return b
    }

    func testIntrudersAreDroppedFramesArriveInOrderAndAMalformedFrameFailsTheReceive() throws {
        let links = try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: -1)
        var fakePort: Int32 = 0
        let fakeListener = proclip_tcp_listen("127.0.0.1", 0, 8, &fakePort)
        XCTAssertGreaterThanOrEqual(fakeListener, 0)
        defer { close(fakeListener) }

        // Before the group forms: junk, a stale introduction, one from a rank outside the
        // group, and a connection that says nothing.
        var intruders: [Int32] = []
        for _ in 0..<4 { intruders.append(try connect(links.endpoint)) }
        write(intruders[0], length: 0, header: Array("not a header at all, but 32 byte".utf8))
        write(intruders[1], length: 0, header: encoded(FrameHeader(type: .ringDirectHello, generation: 6, step: .max, collective: 0, chunk: 1)))
        write(intruders[2], length: 0, header: encoded(FrameHeader(type: .ringDirectHello, generation: 7, step: .max, collective: 0, chunk: 5)))
        // And random bytes of random lengths, some behind a valid magic: those that reach 36
        // bytes are counted; shorter ones wait, unanswered, until the group has formed.
        var seeded = UInt64(0x5EED)
        func next() -> UInt64 { seeded = seeded &* 6364136223846793005 &+ 1442695040888963407; return seeded >> 33 }
        var fuzzCounted = 0
        var refused = Array(intruders[0..<3])  // what the links read in full, count and close
        for i in 0..<24 {
            let fd = try connect(links.endpoint)
            intruders.append(fd)
            var bytes = (0..<Int(next() % 80)).map { _ in UInt8(truncatingIfNeeded: next()) }
            if i % 3 == 0 && bytes.count >= 8 { bytes.replaceSubrange(4..<8, with: [0x50, 0x43, 0x4C, 0x57]) }  // "PCLW"
            if bytes.count >= DirectLinks.prefixBytes {
                fuzzCounted += 1
                refused.append(fd)
            }
            if !bytes.isEmpty { XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }, bytes.count) }
        }
        defer { for fd in intruders { close(fd) } }

        // Rank 1 (faked) introduces itself only once the links have read and refused every
        // intruder that sent a whole prefix (they close those connections).
        let rank1 = Shared<Int32>([-1])
        let allRefused = Shared([false])
        let rank1Introduced = DispatchSemaphore(value: 0)
        let expectRefused = refused
        let introduced = Thread {
            defer { rank1Introduced.signal() }
            allRefused.values[0] = expectRefused.allSatisfy { waitUntilClosedByPeer($0) }
            guard let fd = try? self.connect(links.endpoint) else { return }
            rank1.values[0] = fd
            self.write(fd, length: 0, header: self.encoded(FrameHeader(type: .ringDirectHello, generation: 7, step: .max, collective: 0, chunk: 1)))
        }
        introduced.start()

        var validator = FrameValidator(accepting: [(.ringDirectReduce, 64), (.ringDirectBarrier, 0)])
        try links.connect(
            rank: 0, endpoints: [links.endpoint, "tcp://127.0.0.1:\(fakePort)"], generation: 7, maxPayload: 64,
            deadline: .after(seconds: 10), validator: &validator, check: {})
        XCTAssertEqual(rank1Introduced.wait(timeout: .now() + 10), .success)
        XCTAssertTrue(allRefused.values[0], "every intruder with a whole prefix was refused before rank 1 arrived")
        XCTAssertGreaterThan(fuzzCounted, 5)
        XCTAssertEqual(validator.drops[.stale], 2)
        XCTAssertEqual(validator.drops.total, 3 + fuzzCounted, "\(validator.drops)")
        let fd = rank1.values[0]
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }

        // Rank 0 introduced itself on its own connection to rank 1.
        let accepted = proclip_accept(fakeListener)
        XCTAssertGreaterThanOrEqual(accepted, 0)
        defer { close(accepted) }
        var intro = [UInt8](repeating: 0, count: DirectLinks.prefixBytes)
        var p = pollfd(fd: accepted, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&p, 1, 5000), 1)
        XCTAssertEqual(intro.withUnsafeMutableBytes { recv(accepted, $0.baseAddress, $0.count, 0) }, DirectLinks.prefixBytes)
        let hello = try intro.withUnsafeBytes { try FrameHeader.decode(UnsafeRawBufferPointer(rebasing: $0[4...])).get() }
        XCTAssertEqual(hello, FrameHeader(type: .ringDirectHello, generation: 7, step: .max, collective: 0, chunk: 0))

        // Two frames in one write, then the second's payload completes: both arrive, in order.
        let first = FrameHeader(type: .ringDirectReduce, generation: 7, step: 3, collective: 0, chunk: 1)
        var second = first
        second.collective = 1
        let payload: [UInt8] = Array(1...8)
        write(fd, length: 8, header: encoded(first), payload: payload)
        write(fd, length: 0, header: encoded(FrameHeader(type: .ringDirectBarrier, generation: 7, step: 3, collective: 1, chunk: 1)))
        for expected in [first, FrameHeader(type: .ringDirectBarrier, generation: 7, step: 3, collective: 1, chunk: 1)] {
            let (h, bytes) = try links.receive(
                from: 1, deadline: .after(seconds: 5), spinNanoseconds: 0, validator: &validator, check: {}, waitingFor: "a frame")
            XCTAssertEqual(h, expected)
            XCTAssertEqual(Array(bytes), h.type == .ringDirectReduce ? payload : [])
            links.consumed(1)
        }

        // A payload longer than the group allows: counted, the connection closed, the receive fails.
        write(fd, length: 1 << 20, header: encoded(second))
        XCTAssertThrowsError(try links.receive(
            from: 1, deadline: .after(seconds: 5), spinNanoseconds: 0, validator: &validator, check: {}, waitingFor: "a frame")) { error in
            guard case RingError.protocolViolation(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("rank 1"), text)
        }
        XCTAssertEqual(validator.drops[.payloadTooLarge], 1, "\(validator.drops)")
        // The connection is gone: a later receive is refused at once instead of waiting.
        XCTAssertThrowsError(try links.receive(
            from: 1, deadline: .after(seconds: 5), spinNanoseconds: 0, validator: &validator, check: {}, waitingFor: "a frame"))
        links.close()
    }

    func testAPeerThatClosesIsATimeoutNamingTheClosedConnection() throws {
        let links = try linkedPair(generation: 3)
        links[1].close()  // rank 1's process is gone
        var validator = FrameValidator(accepting: [(.ringDirectBarrier, 0)])
        let tag = FrameHeader(type: .ringDirectBarrier, generation: 3, step: 0, collective: 0, chunk: 0)
        // Rank 0's end of both connections sees the close.
        XCTAssertTrue(waitUntilClosedByPeer(links[0].incoming[1]))
        XCTAssertTrue(waitUntilClosedByPeer(links[0].outgoing[1]))
        // Sending to it is not an error (the message is dropped, as ZeroMQ would queue it) …
        for _ in 0..<3 { try links[0].send(tag, UnsafeRawBufferPointer(start: nil, count: 0), to: 1, deadline: .after(seconds: 1), check: {}) }
        // … and waiting for it ends at the deadline, with a timeout that says why.
        assertTimesOutAfterHalfASecondNamingRank1 {
            _ = try links[0].receive(
                from: 1, deadline: .after(seconds: 0.5), spinNanoseconds: 50_000, validator: &validator, check: {}, waitingFor: "a barrier")
        }
        links[0].close()
    }

    /// `wait`, given a deadline of half a second, fails at that deadline with a timeout that
    /// names rank 1's closed connection.
    func assertTimesOutAfterHalfASecondNamingRank1(_ wait: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        let started = Date()
        XCTAssertThrowsError(try wait(), file: file, line: line) { error in
            guard case RingError.timedOut(let what, _) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(what.contains("rank 1 closed its direct connection"), what, file: file, line: line)
        }
        let waited = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(waited, 0.4, file: file, line: line)
        XCTAssertLessThan(waited, 3, file: file, line: line)
    }

    /// Two ranks send each other more than the kernel buffers hold before either receives: each
    /// reads the other's frames into its own buffer while its send waits, so both complete.
    func testRanksSendingToEachOtherThroughSmallKernelBuffersDoNotBlock() throws {
        let links = [try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: 32 << 10),
                     try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: 32 << 10)]
        let endpoints = links.map(\.endpoint)
        let received = Shared<[UInt8]>([[], []])
        nonisolated(unsafe) let shared = links
        let bytes = 200_000
        let errors = runThreads(2) { r in
            var validator = FrameValidator(accepting: [(.ringDirectReduce, 256 << 10)])
            let me = shared[r], peer = 1 - r
            try me.connect(rank: r, endpoints: endpoints, generation: 1, maxPayload: 256 << 10,
                           deadline: .after(seconds: 10), validator: &validator, check: {})
            let payload = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ r) }
            for k in 0..<2 {
                let tag = FrameHeader(type: .ringDirectReduce, generation: 1, step: 0, collective: UInt32(k), chunk: UInt32(r))
                try payload.withUnsafeBytes { try me.send(tag, $0, to: peer, deadline: .after(seconds: 10), check: {}) }
            }
            for k in 0..<2 {
                let (h, p) = try me.receive(from: peer, deadline: .after(seconds: 10), spinNanoseconds: 0,
                                            validator: &validator, check: {}, waitingFor: "frame \(k)")
                XCTAssertEqual(h.collective, UInt32(k))
                if k == 1 { received.values[r] = Array(p) }
                me.consumed(peer)
            }
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        for r in 0..<2 {
            XCTAssertEqual(received.values[r], (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ (1 - r)) }, "rank \(r)")
        }
        links.forEach { $0.close() }
    }

    func testMissingPeerTimesOutConnecting() throws {
        let links = try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: -1)
        let silent = try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: -1)  // listens, never connects back
        var validator = FrameValidator(accepting: [])
        let started = Date()
        XCTAssertThrowsError(try links.connect(
            rank: 0, endpoints: [links.endpoint, silent.endpoint], generation: 1, maxPayload: 64,
            deadline: .after(seconds: 1), validator: &validator, check: {})) { error in
            guard case RingError.timedOut(let what, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("[1]"), what)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        silent.close()
    }

    /// Two linked ranks over tcp, connected under `generation`, with kernel buffers of
    /// `kernelBuffer` bytes (−1: the OS's).
    func linkedPair(generation: UInt64, kernelBuffer: Int = -1, maxPayload: Int = 4096) throws -> [DirectLinks] {
        let links = [try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: kernelBuffer),
                     try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: kernelBuffer)]
        let endpoints = links.map(\.endpoint)
        nonisolated(unsafe) let shared = links
        let errors = runThreads(2) { r in
            var validator = FrameValidator(accepting: [])
            try shared[r].connect(rank: r, endpoints: endpoints, generation: generation, maxPayload: maxPayload,
                                  deadline: .after(seconds: 10), validator: &validator, check: {})
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        return links
    }

    /// Both ranks exchange 1 MB frames each way through 32 KiB kernel buffers, twice: each
    /// reads while it writes, so neither blocks, and every byte lands in the caller's buffer.
    /// Before the second exchange a small frame arrives first, and is read together with the
    /// start of the bulk frame behind it: the exchange picks those bytes up from the small
    /// receive's buffer.
    func testExchangesRunBothWaysAndPickUpBytesReadAhead() throws {
        let links = try linkedPair(generation: 4, kernelBuffer: 32 << 10)
        nonisolated(unsafe) let shared = links
        let bytes = 1_000_000
        let received = Shared<[UInt8]>([[], []])
        let smallSent = DispatchSemaphore(value: 0)
        let errors = runThreads(2) { r in
            let me = shared[r], peer = 1 - r
            var validator = FrameValidator(accepting: [(.ringAllReduce, bytes), (.ringDirectReduce, 4096)])
            let payload = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ r) }
            var into = [UInt8](repeating: 0, count: bytes)
            func tag(_ rank: Int, _ chunk: UInt32) -> FrameHeader {
                FrameHeader(type: .ringAllReduce, generation: 4, step: 2, collective: UInt32(rank), chunk: chunk)
            }
            try payload.withUnsafeBytes { out in
                try into.withUnsafeMutableBytes { dst in
                    _ = try me.exchange(send: tag(r, 0), out, to: peer, receive: tag(peer, 0), into: dst, from: peer,
                                        deadline: .after(seconds: 20), spinNanoseconds: 0, validator: &validator, check: {})
                }
                XCTAssertEqual(into, (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ peer) }, "rank \(r), first exchange")
                into = [UInt8](repeating: 0, count: bytes)
                // Rank 0 sends a small frame and the start of the next bulk one before rank 1 reads.
                let small = FrameHeader(type: .ringDirectReduce, generation: 4, step: 2, collective: 9, chunk: 0)
                if r == 0 {
                    try me.send(small, UnsafeRawBufferPointer(rebasing: out[0..<100]), to: 1, deadline: .after(seconds: 10), check: {})
                    smallSent.signal()  // the exchange below writes at once: its first bytes follow within microseconds
                } else {
                    XCTAssertEqual(smallSent.wait(timeout: .now() + 10), .success)
                    // The bulk frame's first bytes are queued behind the small frame.
                    XCTAssertTrue(waitUntilQueued(me.incoming[0], moreThan: DirectLinks.prefixBytes + 100))
                    let (h, p) = try me.receive(from: 0, deadline: .after(seconds: 10), spinNanoseconds: 0,
                                                validator: &validator, check: {}, waitingFor: "the small frame")
                    XCTAssertEqual(h, small)
                    XCTAssertEqual(Array(p), (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 13) })
                    me.consumed(0)
                    XCTAssertGreaterThan(me.bufferedBytes(from: 0), 0, "the receive read the bulk frame's first bytes too")
                }
                try into.withUnsafeMutableBytes { dst in
                    _ = try me.exchange(send: tag(r, 1), out, to: peer, receive: tag(peer, 1), into: dst, from: peer,
                                        deadline: .after(seconds: 20), spinNanoseconds: 50_000, validator: &validator, check: {})
                }
            }
            received.values[r] = into
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        for r in 0..<2 {
            XCTAssertEqual(received.values[r], (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ (1 - r)) }, "rank \(r), second exchange")
        }
        links.forEach { $0.close() }
    }

    /// A bulk frame other than the one expected — another chunk, another size, a newer
    /// generation, a malformed header — cannot be skipped on a stream: the exchange fails and
    /// the connection is closed.
    func testAnUnexpectedBulkFrameFailsTheExchange() throws {
        let cases: [(header: FrameHeader?, length: Int, expect: String)] = [
            (FrameHeader(type: .ringAllReduce, generation: 5, step: 0, collective: 0, chunk: 3), 64, "protocol"),
            (FrameHeader(type: .ringAllReduce, generation: 5, step: 0, collective: 0, chunk: 0), 60, "protocol"),
            (FrameHeader(type: .ringAllReduce, generation: 6, step: 0, collective: 0, chunk: 0), 64, "generation"),
            (nil, 64, "malformed"),
        ]
        for (header, length, expect) in cases {
            let links = try linkedPair(generation: 5)
            var validator = FrameValidator(accepting: [(.ringAllReduce, 1024)])
            let payload = [UInt8](repeating: 7, count: length)
            // nil: a frame of a type the receiver does not accept, which fails header validation.
            let sent = header ?? FrameHeader(type: .ringAllReduce, generation: 5, step: 0, collective: 0, chunk: 0)
            try payload.withUnsafeBytes { out in
                _ = try links[1].exchange(send: sent, out, to: 0, receive: nil, into: UnsafeMutableRawBufferPointer(start: nil, count: 0), from: 0,
                                          deadline: .after(seconds: 5), spinNanoseconds: 0, validator: &validator, check: {})
            }
            var into = [UInt8](repeating: 0, count: 64)
            let expected = FrameHeader(type: .ringAllReduce, generation: 5, step: 0, collective: 0, chunk: 0)
            var receiver = FrameValidator(accepting: header == nil ? [] : [(.ringAllReduce, 1024)])
            XCTAssertThrowsError(try into.withUnsafeMutableBytes { dst in
                try links[0].exchange(send: nil, UnsafeRawBufferPointer(start: nil, count: 0), to: 1, receive: expected, into: dst, from: 1,
                                      deadline: .after(seconds: 5), spinNanoseconds: 0, validator: &receiver, check: {})
            }) { error in
                switch (expect, error) {
                case ("protocol", RingError.protocolViolation(let what)): XCTAssertTrue(what.contains("expected"), what)
                case ("generation", RingError.generationChanged(let ours, let seen)): XCTAssertEqual([ours, seen], [5, 6])
                case ("malformed", RingError.protocolViolation(let what)):
                    XCTAssertTrue(what.contains("malformed"), what)
                    XCTAssertEqual(receiver.drops[.unknownType], 1)
                default: XCTFail("\(expect): \(error)")
                }
            }
            // The connection is gone: the next exchange is refused at once.
            XCTAssertThrowsError(try into.withUnsafeMutableBytes { dst in
                try links[0].exchange(send: nil, UnsafeRawBufferPointer(start: nil, count: 0), to: 1, receive: expected, into: dst, from: 1,
                                      deadline: .after(seconds: 5), spinNanoseconds: 0, validator: &receiver, check: {})
            }) { error in
                guard case RingError.invalidArgument = error else { return XCTFail("\(error)") }
            }
            links.forEach { $0.close() }
        }
    }

    /// A neighbour that dies mid-exchange: what is sent to it is dropped, and the wait for its
    /// frame ends at the deadline with a timeout that names the closed connection.
    func testAnExchangeWithAClosedPeerTimesOut() throws {
        let links = try linkedPair(generation: 2)
        var validator = FrameValidator(accepting: [(.ringAllReduce, 1 << 20)])
        let tag = FrameHeader(type: .ringAllReduce, generation: 2, step: 0, collective: 0, chunk: 0)
        links[1].close()  // rank 1's process is gone
        let payload = [UInt8](repeating: 3, count: 1 << 20)
        var into = [UInt8](repeating: 0, count: 1 << 20)
        assertTimesOutAfterHalfASecondNamingRank1 {
            try payload.withUnsafeBytes { out in
                try into.withUnsafeMutableBytes { dst in
                    _ = try links[0].exchange(send: tag, out, to: 1, receive: tag, into: dst, from: 1,
                                              deadline: .after(seconds: 0.5), spinNanoseconds: 50_000, validator: &validator, check: {})
                }
            }
        }
        links[0].close()
    }

    /// In groups too large for a full mesh each rank connects to its successor only and
    /// accepts its predecessor only: an introduction from any other rank is refused and
    /// counted, and exchanges go round the ring.
    func testRingNeighboursOnlyAcceptThePredecessorAlone() throws {
        let w = 4
        let links = try (0..<w).map { _ in try DirectLinks(bind: "tcp://127.0.0.1:*", kernelBufferBytes: -1) }
        let endpoints = links.map(\.endpoint)
        // Rank 2 is not rank 0's predecessor: an introduction claiming it is refused.
        let intruder = try connect(endpoints[0])
        defer { close(intruder) }
        write(intruder, length: 0, header: encoded(FrameHeader(type: .ringDirectHello, generation: 1, step: .max, collective: 0, chunk: 2)))
        nonisolated(unsafe) let shared = links
        let got = Shared<[UInt8]>(Array(repeating: [], count: w))
        let stale = Shared<Int>(Array(repeating: 0, count: w))
        let errors = runThreads(w) { r in
            // The real predecessor, rank 3, connects only once rank 0 has refused the intruder.
            if r == w - 1, !waitUntilClosedByPeer(intruder) { throw RingError.transport("rank 0 never refused the intruder") }
            var validator = FrameValidator(accepting: [(.ringAllReduce, 1 << 20)])
            try shared[r].connect(rank: r, endpoints: endpoints, generation: 1, maxPayload: 0, ringNeighboursOnly: true,
                                  deadline: .after(seconds: 10), validator: &validator, check: {})
            let tag = FrameHeader(type: .ringAllReduce, generation: 1, step: 0, collective: 0, chunk: 0)
            let mine = [UInt8](repeating: UInt8(r + 1), count: 100_000)
            var into = [UInt8](repeating: 0, count: 100_000)
            try mine.withUnsafeBytes { out in
                try into.withUnsafeMutableBytes { dst in
                    _ = try shared[r].exchange(send: tag, out, to: (r + 1) % w, receive: tag, into: dst, from: (r + w - 1) % w,
                                               deadline: .after(seconds: 10), spinNanoseconds: 0, validator: &validator, check: {})
                }
            }
            got.values[r] = into
            stale.values[r] = validator.drops[.stale]
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        for r in 0..<w { XCTAssertEqual(got.values[r], [UInt8](repeating: UInt8((r + w - 1) % w + 1), count: 100_000), "rank \(r)") }
        XCTAssertEqual(stale.values, [1, 0, 0, 0])
        links.forEach { $0.close() }
    }
}
