import Basics
import Synchronization
import Tensors
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// An in-memory ring of `worldSize` ranks, one thread each, for exact and fast tests of the
/// algorithms (and of anything that runs several workers in one process).
///
/// Sending copies the bytes into a message buffer; forwarding moves the buffer to the next
/// mailbox without copying. Buffers are recycled, so a repeated collective allocates nothing
/// once the pool has grown to its working size.
///
/// `@unchecked Sendable`: `worldSize` never changes and every mutable field (`mailboxes`, `pool`,
/// `largest`) is read and written holding `monitor`.
public final class MemoryRing: @unchecked Sendable {
    /// Number of ranks.
    public let worldSize: Int
    let monitor = Monitor()
    var mailboxes: [MessageQueue]  // by receiving rank; guarded by `monitor`
    var pool: [MemoryMessage] = []  // guarded by `monitor`
    var largest = 64  // largest payload so far; every buffer grows to it, so buffers stay interchangeable; guarded by `monitor`

    /// A ring of `worldSize` ranks.
    public init(worldSize: Int) {
        precondition(worldSize >= 1, "a ring has at least one rank")
        self.worldSize = worldSize
        mailboxes = (0..<worldSize).map { _ in MessageQueue() }
    }

    /// Pre-allocates room for `messages` messages of up to `bytes` each in flight, so that even
    /// the first rounds of a workload allocate nothing (the pool otherwise grows on demand to the
    /// largest number ever in flight at once, which depends on thread timing).
    public func reserve(messages: Int, bytes: Int) {
        monitor.withLock {
            largest = max(largest, bytes)
            pool.reserveCapacity(pool.count + messages)
            for _ in 0..<messages {
                let m = MemoryMessage()
                m.reserve(largest)
                pool.append(m)
            }
            for r in 0..<worldSize { mailboxes[r].reserve(messages) }
        }
    }

    /// The transport of `rank`; make one per rank and use it from that rank's thread.
    public func transport(rank: Int) -> MemoryRingTransport {
        precondition((0..<worldSize).contains(rank), "rank \(rank) outside 0..<\(worldSize)")
        return MemoryRingTransport(ring: self, rank: rank)
    }

    /// With the lock held: a recycled message with room for `bytes`.
    func takeMessage(capacity bytes: Int) -> MemoryMessage {
        largest = max(largest, bytes)
        let m = pool.popLast() ?? MemoryMessage()
        m.reserve(largest)
        return m
    }
}

/// One message in flight: header, sender and payload bytes (the buffer only grows).
final class MemoryMessage {
    var header = FrameHeader(type: .ringHello, generation: 0, step: 0, collective: 0, chunk: 0)
    var from = 0
    var count = 0
    private(set) var capacity = 0
    private(set) var base = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

    init() { capacity = 64 }

    deinit { base.deallocate() }

    func reserve(_ bytes: Int) {
        if bytes <= capacity { return }
        base.deallocate()
        base = .allocate(byteCount: bytes, alignment: 64)
        capacity = bytes
    }
}

/// A first-in first-out queue of messages over a circular buffer that only grows.
struct MessageQueue {
    private var slots: [MemoryMessage?] = Array(repeating: nil, count: 64)
    private var head = 0
    private(set) var count = 0

    mutating func append(_ m: MemoryMessage) {
        if count == slots.count { reserve(2 * count) }
        slots[(head + count) % slots.count] = m
        count += 1
    }

    /// Makes room for `capacity` messages.
    mutating func reserve(_ capacity: Int) {
        guard capacity > slots.count else { return }
        let old = slots
        slots = Array(repeating: nil, count: capacity)
        for i in 0..<count { slots[i] = old[(head + i) % old.count] }
        head = 0
    }

    /// Removes and returns the oldest message from `sender`.
    mutating func removeFirst(from sender: Int) -> MemoryMessage? {
        for i in 0..<count where slots[(head + i) % slots.count]!.from == sender {
            let m = slots[(head + i) % slots.count]!
            // Close the gap, keeping order.
            var j = i
            while j > 0 {
                slots[(head + j) % slots.count] = slots[(head + j - 1) % slots.count]
                j -= 1
            }
            slots[head] = nil
            head = (head + 1) % slots.count
            count -= 1
            return m
        }
        return nil
    }
}

/// One rank's view of a `MemoryRing`. Any rank can send to any other; sends copy, so memory
/// passed to `send` is free again on return. Used from its rank's thread, except `abandon()`.
public final class MemoryRingTransport: RingTransport, RingTransportSetup {
    /// This rank, in `0..<worldSize`.
    public let rank: Int
    /// Number of ranks.
    public var worldSize: Int { ring.worldSize }
    /// Received messages dropped so far (of an older generation).
    public private(set) var drops = DropCounts()
    /// Every rank reaches every other directly in memory.
    public var directEndpoint: String? { "memory" }
    private let ring: MemoryRing
    private let abandoned = Atomic<Bool>(false)
    private var closed = false

    init(ring: MemoryRing, rank: Int) {
        self.ring = ring
        self.rank = rank
    }

    /// Copies `bytes` into a pooled message and posts it to `peer`'s mailbox.
    public func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: FrameHeader, deadline: Deadline) throws {
        try checkUsable()
        ring.monitor.lock()
        let m = ring.takeMessage(capacity: bytes.count)
        ring.monitor.unlock()
        if let b = bytes.baseAddress, bytes.count > 0 { memcpy(m.base, b, bytes.count) }
        m.count = bytes.count
        m.header = tag
        m.from = rank
        post(m, to: peer)
    }

    private func post(_ m: MemoryMessage, to peer: Int) {
        ring.monitor.withLock {
            ring.mailboxes[peer].append(m)
            ring.monitor.broadcast()
        }
    }

    /// Takes `peer`'s oldest message from this rank's mailbox (waiting for it until `deadline`);
    /// a forward moves the message itself to the next mailbox.
    public func receive(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline, forward: Forward?,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        while true {
            let m = try next(from: peer, tag: tag, deadline: deadline)
            let isOurs: Bool
            do { isOurs = try classify(m.header, expected: tag) } catch {
                recycle(m)
                throw error
            }
            guard isOurs else {
                drops.record(.stale)
                recycle(m)
                continue
            }
            guard m.count == byteCount else {
                recycle(m)
                throw RingError.protocolViolation("\(tag): \(m.count) bytes from rank \(peer), expected \(byteCount)")
            }
            do { try consume(UnsafeMutableRawBufferPointer(start: m.base, count: m.count)) } catch {
                recycle(m)
                throw error
            }
            if let forward {
                m.header = forward.tag
                m.from = rank
                post(m, to: forward.peer)
            } else {
                recycle(m)
            }
            return
        }
    }

    private func next(from peer: Int, tag: FrameHeader, deadline: Deadline) throws -> MemoryMessage {
        ring.monitor.lock()
        defer { ring.monitor.unlock() }
        while true {
            try checkUsable()
            if let m = ring.mailboxes[rank].removeFirst(from: peer) { return m }
            if !ring.monitor.wait(until: deadline) {
                if let m = ring.mailboxes[rank].removeFirst(from: peer) { return m }
                throw RingError.timedOut(waitingFor: "\(tag) from rank \(peer)", seconds: 0)
            }
        }
    }

    private func recycle(_ m: MemoryMessage) {
        ring.monitor.withLock { ring.pool.append(m) }
    }

    @inline(__always)
    private func checkUsable() throws {
        if abandoned.load(ordering: .acquiring) { throw RingError.abandoned }
        if closed { throw RingError.closed(reason: "transport closed") }
    }

    /// A send and a receive through the mailboxes (a copy each way). The group still runs the
    /// same exchange algorithm as over direct links, so the tests cover it.
    @discardableResult
    public func exchange(
        _ outgoing: UnsafeRawBufferPointer, to next: Int, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, from prev: Int, tag receiveTag: FrameHeader?,
        deadline: Deadline
    ) throws -> UnsafeRawPointer? {
        try exchangeBySendAndReceive(outgoing, to: next, tag: sendTag, incoming, from: prev, tag: receiveTag, deadline: deadline)
    }

    /// Nothing to wait for: sends copy.
    public func awaitSendsReleased(deadline: Deadline) throws {}

    /// Wakes every waiting rank of the ring, so this one's wait ends promptly. Thread-safe.
    public func abandon() {
        abandoned.store(true, ordering: .releasing)
        ring.monitor.withLock { ring.monitor.broadcast() }
    }

    /// Later calls throw `RingError.closed`; nothing is queued on this rank's behalf, so there
    /// is nothing to linger for.
    public func close(lingerMilliseconds: Int) { closed = true }

    // MARK: - Set-up

    /// Nothing to connect: every rank already reaches every other.
    public func connectDirect(_ endpoints: [String], generation: UInt64, ringNeighboursOnly: Bool, deadline: Deadline) throws {}

    /// Exchanges count as direct, so that the group runs its exchange algorithms in memory too;
    /// no shared memory.
    public func peersReady() -> RingTransportCapabilities {
        RingTransportCapabilities(exchangesDirectly: true, sharesMemory: false)
    }
}
