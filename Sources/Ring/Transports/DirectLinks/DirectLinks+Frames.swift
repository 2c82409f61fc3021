import Basics
import Wire
#if canImport(Glibc)
import Glibc
#endif

// Whole frames one at a time: sending, reading into the per-sender buffers, validating the
// length prefix and header.
extension DirectLinks {
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
    func write(to peer: Int, _ payload: UnsafeRawBufferPointer, from sent: Int) throws -> Int? {
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

    /// Releases the frame `receive` returned from `peer`.
    func consumed(_ peer: Int) {
        let base = inbox[peer]!
        let length = Int(UInt32(littleEndian: (base + start[peer]).loadUnaligned(as: UInt32.self)))
        start[peer] += DirectLinks.prefixBytes + length
        if start[peer] == fill[peer] { start[peer] = 0; fill[peer] = 0 }
    }

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
    func prefix(at base: UnsafeRawPointer, from peer: Int, validator: inout FrameValidator) throws -> (FrameHeader, Int) {
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
}
