import CStreams
import Basics
import Wire
#if canImport(Glibc)
import Glibc
#endif

// Connecting a group's direct links: opening connections, accepting and checking the
// others' introductions, tuning the sockets.
extension DirectLinks {
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
}
