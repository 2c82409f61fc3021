import Basics
import Wire
#if canImport(Glibc)
import Glibc
#endif

// Streaming exchanges with the ring neighbours: a frame out and a frame in at once, the
// received one read straight into the caller's memory.
extension DirectLinks {
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
}
