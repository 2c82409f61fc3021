import Basics
import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The ring transport between processes: receives from the predecessor on the listener's
/// ZeroMQ PULL sockets and sends to the successor over PUSH sockets, one connection per stream;
/// message k of an operation travels on stream `k % streams`, so each stream stays in order.
/// Direct messages (`MessageType.isDirect`: latency-bound operations) go to any rank over the
/// listener's `DirectLinks` once `connectDirect` has run: plain stream sockets the calling
/// thread reads and writes itself, without ZeroMQ's I/O-thread hand-offs; so do `exchange`s
/// with the ring neighbours, with which the group runs its bulk all-reduce
/// (`RingOptions.directBulk`). Those parts are in `ZmqRingTransport+Direct.swift`.
///
/// Between ranks joined over `ipc://`, ring payloads travel in shared memory (`SharedSlots`):
/// the message carries a descriptor, the sender copies the payload into a slot once, the
/// receiver uses it in place; when every slot is taken, the payload goes in the message.
///
/// Sends of 64 KiB or more are zero-copy: ZeroMQ reads the caller's memory from its I/O thread
/// until it has written it to the socket (tracked by a `BorrowLedger`); smaller ones are copied. Received payloads
/// are used in place and forwarded without a copy. The only per-message allocations are
/// libzmq's own (its buffer for each large received frame, and a small record per zero-copy
/// send); glibc reuses them (see `RingProcessTuning`).
///
/// Used from one thread at a time, except `abandon()` (see `RingTransport`).
public final class ZmqRingTransport: RingTransport, RingTransportSetup {
    /// This rank, in `0..<worldSize`.
    public let rank: Int
    /// Number of ranks.
    public let worldSize: Int
    /// Received messages dropped so far, on the ring sockets and the direct links.
    public var drops: DropCounts { validator.drops }
    /// The listener's direct-link endpoint.
    public var directEndpoint: String? { listener.directEndpoint }
    let listener: RingListener
    private let pushes: [ZmqSocket]
    let headerIn = ZmqMessage(), payloadIn = ZmqMessage()
    private let headerOut = ZmqMessage(), payloadOut = ZmqMessage()
    /// The successor's shared-memory slots: their name (ipc successors), attached by `peersReady`.
    private let sharedName: String?
    private(set) var sharedOut: SharedSlots?
    /// The descriptor of the payload this rank last put into the successor's slots.
    let descriptor = UnsafeMutableRawPointer.allocate(byteCount: SharedSlots.descriptorBytes, alignment: 8)
    /// The descriptor of a payload an exchange received in shared memory, and whether that
    /// slot is still held (given back at the next exchange, or when sends are awaited).
    let descriptorIn = UnsafeMutableRawPointer.allocate(byteCount: SharedSlots.descriptorBytes, alignment: 8)
    var holdsSlot = false
    var validator: FrameValidator
    private let ledger = BorrowLedger()
    private let abandoned = Atomic<Bool>(false)
    private var isClosed = false
    private let streams: Int
    let spinNanoseconds: UInt64
    /// Longest single sleep in a wait, so that `abandon()` is noticed promptly.
    private let pollSliceMilliseconds = 50
    /// Smaller sends are copied: copying a few kilobytes is cheaper than waiting, at the end of
    /// a latency-bound operation, for ZeroMQ's I/O thread to give the memory back.
    static let zeroCopyMinimumBytes = 64 << 10

    /// Connects `rank` of `worldSize` to its successor's published `successor` endpoint.
    public init(listener: RingListener, rank: Int, worldSize: Int, successor: String) throws {
        guard worldSize >= 1, (0..<worldSize).contains(rank) else {
            throw RingError.invalidArgument("rank \(rank) of world \(worldSize)")
        }
        self.listener = listener
        self.rank = rank
        self.worldSize = worldSize
        streams = listener.options.streams
        spinNanoseconds = UInt64(listener.options.spinMicroseconds) * 1000
        let options = listener.options
        validator = FrameValidator(accepting: MessageType.ringTypes.map {
            ($0, $0 == .ringHello ? RingGroup.helloBytes : $0.isDirect ? options.smallAllReduceBytes : options.segmentBytes)
        } + MessageType.sharedPayloadTypes.map { ($0.sharedPayload, SharedSlots.descriptorBytes) })
        var pushes: [ZmqSocket] = []
        if worldSize > 1 {
            let targets = successor.split(separator: ",").map(String.init)
            guard targets.count == streams else {
                throw RingError.invalidArgument("successor \(successor): \(targets.count) endpoints for \(streams) streams")
            }
            for t in targets {
                let s = try listener.context.socket(.push)
                try configure(s, options: options)
                try s.connect(t)
                pushes.append(s)
            }
        }
        self.pushes = pushes
        let first = successor.split(separator: ",").first.map(String.init) ?? ""
        sharedName = worldSize > 1 && first.hasPrefix("ipc://") && options.sharedMemorySlots > 0 ? SharedSlots.name(for: first) : nil
    }

    deinit {
        close()
        descriptor.deallocate()
        descriptorIn.deallocate()
    }

    /// Attaches to the successor's shared-memory slots (ipc links). Without them (another
    /// host's successor, or none could be made) payloads travel inside the messages. Exchanges
    /// are direct once the direct links are connected.
    public func peersReady() -> RingTransportCapabilities {
        if let sharedName, sharedOut == nil { sharedOut = try? SharedSlots(attaching: sharedName) }
        return RingTransportCapabilities(exchangesDirectly: listener.direct.isConnected, sharesMemory: sharedOut != nil)
    }

    var successor: Int { (rank + 1) % worldSize }
    var predecessor: Int { (rank + worldSize - 1) % worldSize }

    /// Gives back the slot the last exchange's payload was read from.
    @inline(__always)
    func releaseHeldSlot() {
        if holdsSlot {
            holdsSlot = false
            listener.sharedSlots?.release()
        }
    }

    /// Sends a direct message over the direct link to `peer`, any other to the successor over
    /// ZeroMQ: into its shared-memory slots when it can, else zero-copy from 64 KiB, else copied.
    public func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: FrameHeader, deadline: Deadline) throws {
        try checkUsable()
        if tag.type.isDirect {
            return try listener.direct.send(tag, bytes, to: peer, deadline: deadline, check: { try checkUsable() })
        }
        guard peer == successor, worldSize > 1 else {
            throw RingError.invalidArgument("rank \(rank) sends only to its successor \(successor), not \(peer)")
        }
        let socket = pushes[Int(tag.chunk) % streams]
        if try pushShared(bytes, tag: tag, on: socket, deadline: deadline) { return }
        if bytes.count < ZmqRingTransport.zeroCopyMinimumBytes {
            try payloadOut.setCopy(of: bytes)
        } else {
            try payloadOut.setBorrowed(bytes, ledger: ledger)
        }
        do {
            try push(tag, payloadOut, on: socket, deadline: deadline)
        } catch {
            payloadOut.clear()  // returns the loan
            throw error
        }
    }

    /// Puts a ring payload into the successor's shared-memory slots and sends its descriptor;
    /// false (nothing sent) without slots, for hellos and empty payloads, or when all are taken.
    @inline(__always)
    private func pushShared(_ bytes: UnsafeRawBufferPointer, tag: FrameHeader, on socket: ZmqSocket, deadline: Deadline) throws -> Bool {
        guard let out = sharedOut, tag.type != .ringHello, out.put(bytes, descriptor: descriptor) else { return false }
        var t = tag
        t.type = tag.type.sharedPayload
        try payloadOut.setCopy(of: UnsafeRawBufferPointer(start: descriptor, count: SharedSlots.descriptorBytes))
        do {
            try push(t, payloadOut, on: socket, deadline: deadline)
        } catch {
            payloadOut.clear()
            throw error
        }
        return true
    }

    private func push(_ tag: FrameHeader, _ payload: ZmqMessage, on socket: ZmqSocket, deadline: Deadline) throws {
        while try !socket.sendFrame(tag, payload: payload, scratch: headerOut) {
            try checkUsable()
            let ms = deadline.remainingMilliseconds(cap: pollSliceMilliseconds)
            if ms == 0 { throw RingError.timedOut(waitingFor: "room to send \(tag)", seconds: 0) }
            _ = try socket.waitWritable(milliseconds: ms)
        }
    }

    /// Receives a direct message from `peer`'s direct link, any other from the predecessor's
    /// ZeroMQ stream `tag.chunk % streams`, in place (in a shared-memory slot, or libzmq's buffer).
    public func receive(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline, forward: Forward?,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        try checkUsable()
        releaseHeldSlot()
        if tag.type.isDirect {
            return try receiveDirect(from: peer, tag: tag, byteCount: byteCount, deadline: deadline, consume)
        }
        guard peer == predecessor, worldSize > 1 else {
            throw RingError.invalidArgument("rank \(rank) receives only from its predecessor \(predecessor), not \(peer)")
        }
        let socket = listener.sockets[Int(tag.chunk) % streams]
        var spin = SpinWindow(nanoseconds: spinNanoseconds)
        while true {
            switch try socket.receiveFrame(header: headerIn, payload: payloadIn, validator: &validator) {
            case .none:
                try wait(socket, deadline: deadline, spin: &spin, for: "\(tag) from rank \(peer)")
            case .dropped:
                continue
            case .frame(let received):
                var header = received
                let shared = header.type.rawValue & 0x80 != 0
                if shared { header.type = MessageType(rawValue: header.type.rawValue & 0x7F) }
                guard try classify(header, expected: tag) else {
                    validator.record(.stale)
                    payloadIn.clear()
                    continue
                }
                if shared { return try receiveShared(from: peer, tag: tag, byteCount: byteCount, deadline: deadline, forward: forward, consume) }
                try checkSize(payloadIn, byteCount, tag, peer)
                try consume(payloadIn.bytes)
                if let forward { try send(on: forward, UnsafeRawBufferPointer(payloadIn.bytes), received: payloadIn, deadline: deadline) }
                payloadIn.clear()
                return
            }
        }
    }

    /// The rest of `receive` for a payload in this rank's shared-memory slots: used in place,
    /// forwarded (into the successor's slots, or copied into a message), then released.
    private func receiveShared(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline, forward: Forward?,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        defer { payloadIn.clear() }
        guard let slots = listener.sharedSlots else {
            throw RingError.protocolViolation("\(tag) from rank \(peer) names shared memory this rank does not have")
        }
        let payload = try slots.payload(UnsafeRawBufferPointer(payloadIn.bytes))
        guard payload.count == byteCount else {
            throw RingError.protocolViolation("\(tag): \(payload.count) bytes from rank \(peer), expected \(byteCount)")
        }
        try consume(payload)
        if let forward { try send(on: forward, UnsafeRawBufferPointer(payload), received: nil, deadline: deadline) }
        slots.release()
    }

    /// Sends a received payload on to the successor: into its shared-memory slots when it can,
    /// else as the received message itself (`received`, no copy), else as a copy (a payload in
    /// this rank's slots, which are released after this returns).
    private func send(on forward: Forward, _ bytes: UnsafeRawBufferPointer, received: ZmqMessage?, deadline: Deadline) throws {
        guard forward.peer == successor else {
            throw RingError.invalidArgument("rank \(rank) forwards only to its successor, not \(forward.peer)")
        }
        let socket = pushes[Int(forward.tag.chunk) % streams]
        if try pushShared(bytes, tag: forward.tag, on: socket, deadline: deadline) { return }
        let message = received ?? payloadOut
        if received == nil { try payloadOut.setCopy(of: bytes) }
        do { try push(forward.tag, message, on: socket, deadline: deadline) } catch {
            message.clear()
            throw error
        }
    }

    /// Nothing queued: spin a little (looking, yielding), then sleep in `zmq_poll` for a slice.
    func wait(_ socket: ZmqSocket, deadline: Deadline, spin: inout SpinWindow, for what: @autoclosure () -> String) throws {
        if spin.isOpen() {
            // A non-blocking receive looks at the socket's command mailbox at most once a
            // millisecond (libzmq throttles it), so a message that arrived on an idle pipe
            // stays unseen; a zero-timeout poll processes the commands every time.
            if try socket.waitReadable(milliseconds: 0) { return }
            sched_yield()
            return
        }
        try checkUsable()
        let ms = deadline.remainingMilliseconds(cap: pollSliceMilliseconds)
        if ms == 0 { throw RingError.timedOut(waitingFor: what(), seconds: 0) }
        _ = try socket.waitReadable(milliseconds: ms)
    }

    @inline(__always)
    func checkSize(_ payload: ZmqMessage, _ byteCount: Int, _ tag: FrameHeader, _ peer: Int) throws {
        guard payload.count == byteCount else {
            let n = payload.count
            payload.clear()
            throw RingError.protocolViolation("\(tag): \(n) bytes from rank \(peer), expected \(byteCount)")
        }
    }

    /// Gives back a shared-memory slot an exchange left held, then waits until ZeroMQ has
    /// released every zero-copy send.
    public func awaitSendsReleased(deadline: Deadline) throws {
        releaseHeldSlot()
        do { try ledger.awaitIdle(deadline: deadline) } catch {
            throw RingError.timedOut(waitingFor: "ZeroMQ to release \(ledger.outstandingCount) zero-copy sends", seconds: 0)
        }
    }

    /// Makes waits in progress and later calls throw `RingError.abandoned`; waits notice it
    /// within a poll slice (50 ms). Thread-safe.
    public func abandon() { abandoned.store(true, ordering: .releasing) }

    /// Closes the sockets and the direct links and shuts the context down, after giving queued
    /// ZeroMQ messages up to `lingerMilliseconds` to leave (0: dropped; a hello that refuses
    /// the group still tells the peer why); on return ZeroMQ has released every zero-copy send.
    public func close(lingerMilliseconds: Int) {
        if isClosed { return }
        if lingerMilliseconds > 0 {
            for s in pushes { try? s.set(.linger(milliseconds: lingerMilliseconds)) }
        }
        isClosed = true
        headerIn.clear(); payloadIn.clear(); headerOut.clear(); payloadOut.clear()
        for s in pushes { s.close() }
        for s in listener.sockets { s.close() }
        listener.direct.close()
        listener.context.terminate()
        listener.removeSocketFiles()
    }

    @inline(__always)
    func checkUsable() throws {
        if abandoned.load(ordering: .acquiring) { throw RingError.abandoned }
        if isClosed { throw RingError.closed(reason: "transport closed") }
    }
}
