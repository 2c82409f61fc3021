import Basics
import CStreams
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The direct links of a small group: a plain stream socket (TCP, or a Unix socket for `ipc://`
/// endpoints) from every rank to every other, written and read by the calling thread itself.
///
/// Latency-bound operations (small all-reduces, barriers) are a few messages of a few kilobytes
/// each. Through ZeroMQ every such message is handed to the sender's I/O thread, written,
/// read by the receiver's I/O thread and handed on to the receiving thread: three thread
/// wake-ups and about ten system calls. Here it is one `sendmsg` and one `recv`, as in MPI's
/// TCP transport.
///
/// Bulk all-reduces run here too (`exchange`, `RingOptions.directBulk`): each rank writes its
/// segment to its successor and reads its predecessor's straight into the destination, in one
/// loop on its own thread. Through ZeroMQ every segment lands in a buffer of libzmq's first and
/// costs the hand-offs above; here it costs the kernel's two copies and a few system calls.
///
/// Each rank listens on one socket. When the group forms, every rank connects to every other
/// and introduces itself (a `ringDirectHello` frame with its rank and the generation); the
/// connection from r to s then carries r's messages to s, in the order sent. A receive reads
/// only the expected sender's connection: all ranks call the same collectives in the same
/// order, so between two ranks the messages arrive in the order they are asked for.
///
/// Framing: the payload length (UInt32, little-endian), the 32-byte `FrameHeader`, the payload.
/// A frame whose length or header fails validation cannot be skipped on a stream (its length is
/// not to be trusted): it is counted, the connection is closed, and the receive fails. A
/// connection that does not introduce itself properly is counted and closed.
///
/// A rank whose connection closes (its process died) is treated as ZeroMQ treats a vanished
/// peer: what is sent to it is dropped, and a wait for it ends at its deadline with
/// `RingError.timedOut`, naming the closed connection. A peer's death is always a timeout,
/// whichever path the operation took.
///
/// Nothing is allocated per message: each incoming connection has a buffer of two frames,
/// allocated when the group connects.
final class DirectLinks {
    /// What other ranks connect to: `tcp://host:port` or `ipc://path`.
    let endpoint: String
    private let isTCP: Bool
    private var listenFD: Int32
    private let unixPath: String?
    private let kernelBufferBytes: Int
    private var outgoing: [Int32] = []
    private var incoming: [Int32] = []
    /// Per sender: received bytes, frames from `start`, read up to `fill`.
    private var inbox: [UnsafeMutableRawPointer?] = []
    private var start: [Int] = []
    private var fill: [Int] = []
    private var capacity = 0
    private var maxPayload = 0
    private let prefix = UnsafeMutableRawPointer.allocate(byteCount: DirectLinks.prefixBytes, alignment: 8)
    /// Length prefix and header of the frame `exchange` is receiving.
    private let prefixIn = UnsafeMutableRawPointer.allocate(byteCount: DirectLinks.prefixBytes, alignment: 8)
    private let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 3)
    /// pollfd scratch for waits that watch every incoming connection.
    private var pollSet = UnsafeMutablePointer<pollfd>.allocate(capacity: 1)
    private var isClosed = false
    /// Per rank: its connection to this one has closed (`closedIn`), or this rank's to it
    /// (`closedOut`).
    private var closedIn: [Bool] = [], closedOut: [Bool] = []

    /// Length prefix and header of every frame.
    static let prefixBytes = 4 + FrameHeader.byteCount
    /// Longest single sleep in a wait, so that an abandoned operation is noticed promptly.
    private static let pollSliceMilliseconds = 50

    /// Whether `connect` has joined this rank to the others.
    var isConnected: Bool { !outgoing.isEmpty }

    /// Binds and listens at `bind`: `tcp://host:port` (`*` as the port: any free one) or
    /// `ipc://path`.
    init(bind: String, kernelBufferBytes: Int) throws {
        self.kernelBufferBytes = kernelBufferBytes
        isTCP = !bind.hasPrefix("ipc://")
        if isTCP {
            let (host, port) = try DirectLinks.hostAndPort(bind)
            var bound: Int32 = 0
            listenFD = proclip_tcp_listen(host, Int32(port), 128, &bound)
            let shown = host == "*" ? "0.0.0.0" : host.contains(":") ? "[\(host)]" : host
            endpoint = "tcp://\(shown):\(bound)"
            unixPath = nil
        } else {
            unixPath = String(bind.dropFirst(6))
            listenFD = proclip_unix_listen(unixPath!, 128)
            endpoint = bind
        }
        guard listenFD >= 0 else { throw RingError.transport("cannot listen at \(bind): \(DirectLinks.text(listenFD))") }
    }

    deinit {
        close()
        prefix.deallocate()
        prefixIn.deallocate()
        iov.deallocate()
        pollSet.deallocate()
    }

    /// Connects to every other rank's `endpoints[r]`, introduces this rank, and accepts every
    /// other rank's connection, all before `deadline` — or, with `ringNeighboursOnly`, connects
    /// to the successor and accepts the predecessor only (what `exchange` needs, in groups too
    /// large for a full mesh). Messages are at most `maxPayload` bytes. Malformed or stale
    /// introductions, and those of ranks not expected, are counted in `validator` and their
    /// connections closed.
    func connect(
        rank: Int, endpoints: [String], generation: UInt64, maxPayload: Int, ringNeighboursOnly: Bool = false,
        deadline: Deadline, validator: inout FrameValidator, check: () throws -> Void
    ) throws {
        let w = endpoints.count
        guard (0..<w).contains(rank), w > 1, outgoing.isEmpty else {
            throw RingError.invalidArgument("direct links: rank \(rank) of \(w), or connected twice")
        }
        let sendsTo = ringNeighboursOnly ? [(rank + 1) % w] : (0..<w).filter { $0 != rank }
        let receivesFrom = ringNeighboursOnly ? [(rank + w - 1) % w] : sendsTo
        self.maxPayload = maxPayload
        capacity = 2 * (DirectLinks.prefixBytes + maxPayload)
        outgoing = Array(repeating: -1, count: w)
        incoming = Array(repeating: -1, count: w)
        inbox = (0..<w).map { receivesFrom.contains($0) ? UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16) : nil }
        start = Array(repeating: 0, count: w)
        fill = Array(repeating: 0, count: w)
        closedIn = Array(repeating: false, count: w)
        closedOut = closedIn
        pollSet.deallocate()
        pollSet = .allocate(capacity: w + 1)

        let hello = FrameHeader(type: .ringDirectHello, generation: generation, step: .max, collective: 0, chunk: UInt32(rank))
        for peer in sendsTo {
            outgoing[peer] = try open(endpoints[peer], peer: peer, deadline: deadline, check: check)
            try send(hello, UnsafeRawBufferPointer(start: nil, count: 0), to: peer, deadline: deadline, check: check)
        }
        try acceptPeers(receivesFrom, rank: rank, generation: generation, deadline: deadline, validator: &validator, check: check)
    }

    /// Sends one frame to `peer`. Returns once the kernel holds all of it (no caller memory is
    /// referenced afterwards). While the connection is full, incoming frames are read into their
    /// buffers, so two ranks sending to each other cannot block each other.
    func send(_ header: FrameHeader, _ payload: UnsafeRawBufferPointer, to peer: Int, deadline: Deadline, check: () throws -> Void) throws {
        guard outgoing.indices.contains(peer), outgoing[peer] >= 0 else {
            throw RingError.invalidArgument("no direct connection to rank \(peer)")
        }
        if closedOut[peer] { return }
        let fd = outgoing[peer]
        prefix.storeBytes(of: UInt32(payload.count).littleEndian, as: UInt32.self)
        header.encode(into: prefix + 4)
        let total = DirectLinks.prefixBytes + payload.count
        var sent = 0
        while sent < total {
            guard let n = try write(to: peer, payload, from: sent) else { return }  // closed: dropped
            if n > 0 {
                sent += n
            } else {
                try waitWritable(fd, peer: peer, deadline: deadline, check: check)
            }
        }
    }

    /// Writes what the kernel takes of the frame in `prefix` and `payload`, from byte `sent`
    /// on: the bytes written (0 when the connection is full), or nil when `peer`'s end has
    /// closed (the frame is dropped; the operation then times out waiting for that rank).
    @inline(__always)
    private func write(to peer: Int, _ payload: UnsafeRawBufferPointer, from sent: Int) throws -> Int? {
        var msg = msghdr()
        if sent < DirectLinks.prefixBytes {
            iov[0] = iovec(iov_base: prefix + sent, iov_len: DirectLinks.prefixBytes - sent)
            iov[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)
            msg.msg_iovlen = payload.count > 0 ? 2 : 1
        } else {
            let at = sent - DirectLinks.prefixBytes
            iov[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress! + at), iov_len: payload.count - at)
            msg.msg_iovlen = 1
        }
        msg.msg_iov = iov
        while true {
            let n = sendmsg(outgoing[peer], &msg, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return 0 }
            if e == EPIPE || e == ECONNRESET {
                closedOut[peer] = true
                return nil
            }
            throw RingError.transport("direct connection to rank \(peer): \(String(cString: strerror(e)))")
        }
    }

    /// The next frame from `peer`: its header, validated, and its payload in place, valid until
    /// `consumed(peer)`. Polls (yielding the CPU between polls) for `spinNanoseconds`, then
    /// sleeps in `poll` until `deadline`.
    func receive(
        from peer: Int, deadline: Deadline, spinNanoseconds: UInt64, validator: inout FrameValidator,
        check: () throws -> Void, waitingFor what: @autoclosure () -> String
    ) throws -> (FrameHeader, UnsafeMutableRawBufferPointer) {
        guard incoming.indices.contains(peer), incoming[peer] >= 0 else {
            throw RingError.invalidArgument("no direct connection from rank \(peer)")
        }
        let fd = incoming[peer]
        var spin = SpinWindow(nanoseconds: spinNanoseconds)
        while true {
            if let frame = try frame(from: peer, validator: &validator) { return frame }
            if !closedIn[peer] {
                switch try read(peer) {
                case .some(true): continue
                case .some(false): closedIn[peer] = true
                case .none: break
                }
            }
            if !closedIn[peer] && spin.isOpen() {
                sched_yield()
                continue
            }
            try check()
            let ms = deadline.remainingMilliseconds(cap: DirectLinks.pollSliceMilliseconds)
            if ms == 0 {
                throw RingError.timedOut(waitingFor: what() + closedNote(peer), seconds: 0)
            }
            var p = pollfd(fd: closedIn[peer] ? -1 : fd, events: Int16(POLLIN), revents: 0)  // closed: just sleep
            _ = poll(&p, 1, Int32(ms))
        }
    }

    /// Bytes from `peer` read ahead of the frames received so far.
    func bufferedBytes(from peer: Int) -> Int { inbox.indices.contains(peer) ? fill[peer] - start[peer] : 0 }

    /// What a timeout waiting for `peer` adds when its connection has closed.
    private func closedNote(_ peer: Int) -> String {
        closedIn[peer] ? " (rank \(peer) closed its direct connection)" : ""
    }

    /// Releases the frame `receive` returned from `peer`.
    func consumed(_ peer: Int) {
        let base = inbox[peer]!
        let length = Int(UInt32(littleEndian: (base + start[peer]).loadUnaligned(as: UInt32.self)))
        start[peer] += DirectLinks.prefixBytes + length
        if start[peer] == fill[peer] { start[peer] = 0; fill[peer] = 0 }
    }

    // MARK: - Streaming

    /// Sends one frame (`header`, `payload`) to `next` while receiving the next frame from
    /// `prev` straight into `destination`, both on the calling thread: bulk ring traffic, with no
    /// buffer between the kernel and the caller's memory. Returns when the kernel holds all of
    /// the sent frame and the received one is complete. A nil `header` sends nothing, a nil
    /// `expected` receives nothing.
    ///
    /// The received frame must be `expected` with exactly `destination.count` bytes — or, when
    /// `head` is given (shared-memory links), `expected` as a shared payload whose `head.count`
    /// bytes (the descriptor) land in `head`: then the result is true. A stream cannot skip
    /// anything else, so it is a protocol violation and the connection is closed. The header is
    /// checked once complete, by which time the first payload bytes may be in place already:
    /// after a failure, `destination` holds no useful data. A closed connection behaves as in
    /// `send` and `receive`: frames to it are dropped, a wait for it ends at `deadline`.
    @discardableResult
    func exchange(
        send header: FrameHeader?, _ payload: UnsafeRawBufferPointer, to next: Int,
        receive expected: FrameHeader?, into destination: UnsafeMutableRawBufferPointer, from prev: Int,
        head: UnsafeMutableRawBufferPointer? = nil,
        deadline: Deadline, spinNanoseconds: UInt64, validator: inout FrameValidator, check: () throws -> Void
    ) throws -> Bool {
        var sent = 0, toSend = 0
        if let header {
            guard outgoing.indices.contains(next), outgoing[next] >= 0 else {
                throw RingError.invalidArgument("no direct connection to rank \(next)")
            }
            if !closedOut[next] {
                prefix.storeBytes(of: UInt32(payload.count).littleEndian, as: UInt32.self)
                header.encode(into: prefix + 4)
                toSend = DirectLinks.prefixBytes + payload.count
            }
        }
        let head = head.flatMap { $0.count > 0 && $0.count <= destination.count ? $0 : nil }
        // Bytes of the frame received so far, and how far to read: up to the end of `head` until
        // the header has told the frame's length, then to its end.
        var received = 0, limit = 0, checked = false, shared = false
        if expected != nil {
            guard incoming.indices.contains(prev), incoming[prev] >= 0 else {
                throw RingError.invalidArgument("no direct connection from rank \(prev)")
            }
            limit = DirectLinks.prefixBytes + (head?.count ?? destination.count)
        }
        var spin = SpinWindow(nanoseconds: spinNanoseconds)
        while sent < toSend || received < limit {
            var moved = false
            if sent < toSend {
                if let n = try write(to: next, payload, from: sent) {
                    sent += n
                    moved = n > 0
                } else {
                    toSend = 0  // closed: dropped
                }
            }
            if received < limit && !closedIn[prev] {
                let n = try readFrame(from: prev, at: received, upTo: limit, head: head, destination: destination)
                if n > 0 {
                    received += n
                    moved = true
                    if !checked && received >= DirectLinks.prefixBytes {
                        shared = try checkPrefix(expected!, destination.count, sharedBytes: head?.count, from: prev, validator: &validator)
                        checked = true
                        limit = DirectLinks.prefixBytes + (shared ? head!.count : destination.count)
                    }
                } else if n < 0 {
                    closedIn[prev] = true
                }
            }
            if moved {
                spin = SpinWindow(nanoseconds: spinNanoseconds)
                continue
            }
            if spin.isOpen() && !(received < limit && closedIn[prev]) {
                sched_yield()
                continue
            }
            try check()
            let ms = deadline.remainingMilliseconds(cap: DirectLinks.pollSliceMilliseconds)
            if ms == 0 {
                if received < limit {
                    throw RingError.timedOut(waitingFor: "\(expected!) from rank \(prev)" + closedNote(prev), seconds: 0)
                }
                throw RingError.timedOut(waitingFor: "room to send to rank \(next)", seconds: 0)
            }
            pollSet[0] = pollfd(fd: sent < toSend ? outgoing[next] : -1, events: Int16(POLLOUT), revents: 0)
            pollSet[1] = pollfd(fd: received < limit && !closedIn[prev] ? incoming[prev] : -1, events: Int16(POLLIN), revents: 0)
            _ = poll(pollSet, 2, Int32(ms))  // both −1 (a closed peer): sleeps
        }
        if let head, expected != nil, !shared { memcpy(destination.baseAddress!, head.baseAddress!, head.count) }
        return shared
    }

    /// Receives bytes `at..<limit` of the frame from `peer`: the prefix into `prefixIn`, the
    /// payload into `destination` (its first `head.count` bytes into `head`, when given) —
    /// first from what `receive` read ahead, else from the connection, in one call. The bytes
    /// received (0: none there yet), or −1 at the end of the stream.
    @inline(__always)
    private func readFrame(
        from peer: Int, at: Int, upTo limit: Int, head: UnsafeMutableRawBufferPointer?, destination: UnsafeMutableRawBufferPointer
    ) throws -> Int {
        // The frame's byte ranges and where each goes, as iovecs from `at` to `limit`.
        let p = DirectLinks.prefixBytes, h = head?.count ?? 0
        var count = vector(0, prefixIn, 0..<p, at: at, limit: limit)
        if let head { count = vector(count, head.baseAddress, p..<(p + h), at: at, limit: limit) }
        count = vector(count, destination.baseAddress.map { $0 + h }, (p + h)..<(p + destination.count), at: at, limit: limit)
        if count == 0 { return 0 }

        if let buffered = inbox[peer], fill[peer] > start[peer] {
            var n = 0, available = min(fill[peer] - start[peer], limit - at)
            for i in 0..<count where available > 0 {
                let k = min(iov[i].iov_len, available)
                memcpy(iov[i].iov_base, buffered + start[peer] + n, k)
                n += k
                available -= k
            }
            start[peer] += n
            if start[peer] == fill[peer] { start[peer] = 0; fill[peer] = 0 }
            return n
        }
        while true {
            let n = readv(incoming[peer], iov, Int32(count))
            if n > 0 { return n }
            if n == 0 { return -1 }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return 0 }
            if e == ECONNRESET { return -1 }
            throw RingError.transport("direct connection from rank \(peer): \(String(cString: strerror(e)))")
        }
    }

    /// Adds iovec `i` for the frame bytes `range` (which go to `base`) within `at..<limit`,
    /// if any; returns the number of iovecs.
    @inline(__always)
    private func vector(_ i: Int, _ base: UnsafeMutableRawPointer?, _ range: Range<Int>, at: Int, limit: Int) -> Int {
        let lo = max(at, range.lowerBound), hi = min(limit, range.upperBound)
        guard lo < hi, let base else { return i }
        iov[i] = iovec(iov_base: base + (lo - range.lowerBound), iov_len: hi - lo)
        return i + 1
    }

    /// Checks the received prefix in `prefixIn`: a valid header that is `expected` with a
    /// payload of `byteCount` (false), or — when `sharedBytes` is given — `expected` as a shared
    /// payload of `sharedBytes` (true). Anything else closes the connection and throws.
    private func checkPrefix(
        _ expected: FrameHeader, _ byteCount: Int, sharedBytes: Int?, from peer: Int, validator: inout FrameValidator
    ) throws -> Bool {
        let (header, length) = try prefix(at: prefixIn, from: peer, validator: &validator)
        if header == expected && length == byteCount { return false }
        var shared = expected
        shared.type = expected.type.sharedPayload
        if let sharedBytes, header == shared && length == sharedBytes { return true }
        dropConnection(from: peer)
        if header.generation > expected.generation {
            throw RingError.generationChanged(ours: expected.generation, seen: header.generation)
        }
        throw RingError.protocolViolation("expected \(expected) of \(byteCount) bytes from rank \(peer), received \(header) of \(length); connection closed")
    }

    /// Closes every connection and the listener, and removes a Unix socket file.
    func close() {
        if isClosed { return }
        isClosed = true
        for fd in outgoing + incoming + [listenFD] where fd >= 0 { Glibc.close(fd) }
        outgoing = []
        incoming = []
        listenFD = -1
        for b in inbox { b?.deallocate() }
        inbox = []
        if let unixPath { unlink(unixPath) }
    }

    // MARK: - Connecting

    /// A connection to `endpoint`, retried while refused (the peer's listener is bound before the
    /// hello round ends, so refusals are rare and brief).
    private func open(_ endpoint: String, peer: Int, deadline: Deadline, check: () throws -> Void) throws -> Int32 {
        let ipcPath = endpoint.hasPrefix("ipc://") ? String(endpoint.dropFirst(6)) : nil
        let (host, port) = ipcPath == nil ? try DirectLinks.hostAndPort(endpoint) : ("", 0)
        while true {
            try check()
            let fd = ipcPath.map { proclip_unix_connect($0) } ?? proclip_tcp_connect(host, Int32(port))
            var outcome = fd < 0 ? fd : Int32(0)
            if fd >= 0 {
                // In progress (or done): wait for it in slices, so that abandoning is noticed.
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                while poll(&p, 1, Int32(deadline.remainingMilliseconds(cap: DirectLinks.pollSliceMilliseconds))) != 1 {
                    do { try check() } catch { Glibc.close(fd); throw error }
                    if deadline.hasPassed { outcome = -ETIMEDOUT; break }
                }
                if outcome == 0 { outcome = proclip_connect_result(fd) }
                if outcome == 0 {
                    outcome = tune(fd)
                    if outcome == 0 { return fd }
                }
                Glibc.close(fd)
            }
            let retry = outcome == -ECONNREFUSED || outcome == -EAGAIN || outcome == -ENOENT || outcome == -ETIMEDOUT
            guard retry else {
                throw RingError.transport("cannot connect to rank \(peer) at \(endpoint): \(DirectLinks.text(outcome))")
            }
            if deadline.hasPassed {
                throw RingError.timedOut(waitingFor: "a direct connection to rank \(peer) at \(endpoint) (\(DirectLinks.text(outcome)))", seconds: 0)
            }
            usleep(10_000)
        }
    }

    /// Accepts connections until each of `peers` has introduced itself on one.
    private func acceptPeers(
        _ peers: [Int], rank: Int, generation: UInt64, deadline: Deadline,
        validator: inout FrameValidator, check: () throws -> Void
    ) throws {
        // Connections not yet introduced, with the bytes of their introduction so far.
        var pending: [(fd: Int32, got: [UInt8])] = []
        defer { for p in pending { Glibc.close(p.fd) } }
        var expected = [Bool](repeating: false, count: incoming.count)
        for p in peers { expected[p] = true }
        var missing = peers.count
        while missing > 0 {
            try check()
            let ms = deadline.remainingMilliseconds(cap: DirectLinks.pollSliceMilliseconds)
            if ms == 0 {
                let absent = peers.filter { incoming[$0] < 0 }
                throw RingError.timedOut(waitingFor: "direct connections from ranks \(absent)", seconds: 0)
            }
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
            fds += pending.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), Int32(ms)) <= 0 { continue }
            for i in stride(from: pending.count - 1, through: 0, by: -1) where fds[i + 1].revents != 0 {
                var chunk = [UInt8](repeating: 0, count: DirectLinks.prefixBytes - pending[i].got.count)
                let n = chunk.withUnsafeMutableBytes { recv(pending[i].fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                if n <= 0 {
                    Glibc.close(pending.remove(at: i).fd)
                    continue
                }
                pending[i].got += chunk[..<n]
                guard pending[i].got.count == DirectLinks.prefixBytes else { continue }
                let (fd, bytes) = pending.remove(at: i)
                if let peer = introduction(bytes, expected: expected, generation: generation, validator: &validator) {
                    incoming[peer] = fd
                    missing -= 1
                } else {
                    Glibc.close(fd)
                }
            }
            if fds[0].revents != 0 {
                while true {
                    let fd = proclip_accept(listenFD)
                    if fd < 0 { break }
                    if tune(fd) != 0 {
                        Glibc.close(fd)
                        continue
                    }
                    pending.append((fd, []))
                }
            }
        }
    }

    /// Sets a connection's options (TCP_NODELAY, kernel buffers): 0, or −errno.
    private func tune(_ fd: Int32) -> Int32 {
        proclip_stream_tune(fd, isTCP ? 1 : 0, Int32(clamping: kernelBufferBytes))
    }

    /// The rank a connection's first frame introduces, or nil (counted) when it is not a
    /// well-formed introduction of an `expected` rank of this generation not yet connected.
    private func introduction(_ bytes: [UInt8], expected: [Bool], generation: UInt64, validator: inout FrameValidator) -> Int? {
        bytes.withUnsafeBytes { raw in
            let length = UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self))
            switch FrameHeader.decode(UnsafeRawBufferPointer(rebasing: raw[4...])) {
            case .failure(let reason):
                validator.record(reason)
                return nil
            case .success(let h):
                guard h.type == .ringDirectHello else { validator.record(.unknownType); return nil }
                guard length == 0 else { validator.record(.payloadTooLarge); return nil }
                let peer = Int(h.chunk)
                guard h.generation == generation, peer < expected.count, expected[peer], incoming[peer] < 0 else {
                    validator.record(.stale)
                    return nil
                }
                return peer
            }
        }
    }

    // MARK: - Reading

    /// The complete frame at the head of `peer`'s buffer, or nil while it is incomplete.
    private func frame(from peer: Int, validator: inout FrameValidator) throws -> (FrameHeader, UnsafeMutableRawBufferPointer)? {
        let available = fill[peer] - start[peer]
        guard available >= DirectLinks.prefixBytes else { return nil }
        let base = inbox[peer]! + start[peer]
        let (header, length) = try prefix(at: base, from: peer, validator: &validator)
        guard length <= maxPayload else {
            validator.record(.payloadTooLarge)
            dropConnection(from: peer)
            throw RingError.protocolViolation("rank \(peer) sent a \(length)-byte direct message, more than \(maxPayload); connection closed")
        }
        guard available >= DirectLinks.prefixBytes + length else { return nil }
        return (header, UnsafeMutableRawBufferPointer(start: base + DirectLinks.prefixBytes, count: length))
    }

    /// The header and payload length of the frame prefix at `base`, validated; a malformed one
    /// closes `peer`'s connection and throws.
    private func prefix(at base: UnsafeRawPointer, from peer: Int, validator: inout FrameValidator) throws -> (FrameHeader, Int) {
        let length = Int(UInt32(littleEndian: base.loadUnaligned(as: UInt32.self)))
        switch validator.validate(header: UnsafeRawBufferPointer(start: base + 4, count: FrameHeader.byteCount), payloadCount: length, extraFrames: 0) {
        case .failure(let reason):
            dropConnection(from: peer)
            throw RingError.protocolViolation("rank \(peer) sent a malformed frame on its direct connection (\(reason)); connection closed")
        case .success(let header):
            return (header, length)
        }
    }

    /// Reads what `peer`'s connection holds into its buffer: true when bytes came, false at
    /// the end of the stream, nil when nothing is there yet (or the buffer is full).
    private func read(_ peer: Int) throws -> Bool? {
        guard let buffer = inbox[peer] else { return nil }
        // A frame that starts in the first half always fits: move the rest down only then.
        if start[peer] > capacity / 2 {
            let rest = fill[peer] - start[peer]
            memmove(buffer, buffer + start[peer], rest)
            start[peer] = 0
            fill[peer] = rest
        }
        let room = capacity - fill[peer]
        if room == 0 { return nil }
        let n = recv(incoming[peer], buffer + fill[peer], room, Int32(MSG_DONTWAIT))
        if n > 0 {
            fill[peer] += n
            return true
        }
        if n == 0 { return false }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return nil }
        if e == ECONNRESET { return false }
        throw RingError.transport("direct connection from rank \(peer): \(String(cString: strerror(e)))")
    }

    /// Waits until `fd` (to `peer`) takes more bytes, reading every incoming connection
    /// meanwhile.
    private func waitWritable(_ fd: Int32, peer: Int, deadline: Deadline, check: () throws -> Void) throws {
        try check()
        let ms = deadline.remainingMilliseconds(cap: DirectLinks.pollSliceMilliseconds)
        if ms == 0 { throw RingError.timedOut(waitingFor: "room to send to rank \(peer)", seconds: 0) }
        pollSet[0] = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        var n = 1
        for (q, inFD) in incoming.enumerated() where inFD >= 0 && !closedIn[q] && fill[q] < capacity {
            pollSet[n] = pollfd(fd: inFD, events: Int16(POLLIN), revents: 0)
            n += 1
        }
        guard poll(pollSet, nfds_t(n), Int32(ms)) > 0 else { return }
        for i in 1..<n where pollSet[i].revents != 0 {
            if let q = incoming.firstIndex(of: pollSet[i].fd), try read(q) == false { closedIn[q] = true }
        }
    }

    private func dropConnection(from peer: Int) {
        Glibc.close(incoming[peer])
        incoming[peer] = -1
    }

    // MARK: - Addresses

    /// Host and port of `tcp://host:port` (`*` as the port: 0; IPv6 hosts in brackets).
    static func hostAndPort(_ endpoint: String) throws -> (String, Int) {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":"), colon > endpoint.index(endpoint.startIndex, offsetBy: 5) else {
            throw RingError.invalidArgument("endpoint \(endpoint): expected tcp://host:port or ipc://path")
        }
        var host = String(endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let portText = endpoint[endpoint.index(after: colon)...]
        if portText == "*" { return (host, 0) }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
            throw RingError.invalidArgument("endpoint \(endpoint): bad host or port")
        }
        return (host, port)
    }

    private static func text(_ negativeErrno: Int32) -> String {
        negativeErrno == -EINVAL ? "invalid address" : String(cString: strerror(-negativeErrno))
    }
}
