import Basics
import CZmq
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One ZeroMQ message frame (`zmq_msg_t`), kept at a fixed address and reused: a hot loop
/// holds a few of these and allocates nothing itself.
///
/// Content comes from three places: a copy (`setCopy`), borrowed caller memory
/// (`setBorrowed`, zero-copy; counted in a `BorrowLedger` until ZeroMQ lets go), or an owned
/// buffer handed over to ZeroMQ (`setOwned`, zero-copy). Received frames own their content; it
/// may be read and written in place and sent on again without a copy.
public final class ZmqMessage {
    let pointer: UnsafeMutablePointer<zmq_msg_t>

    /// An empty message.
    public init() {
        pointer = .allocate(capacity: 1)
        zmq_msg_init(pointer)
    }

    deinit {
        zmq_msg_close(pointer)
        pointer.deallocate()
    }

    /// Size of the content in bytes.
    @inline(__always) public var count: Int { zmq_msg_size(pointer) }

    /// The content, in place. Valid until the message is changed, sent or released.
    @inline(__always) public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: zmq_msg_data(pointer), count: zmq_msg_size(pointer))
    }

    /// The user id the ZAP handler gave the connection this received frame came over (nil on
    /// connections that were not authenticated).
    public var userID: String? {
        guard let p = zmq_msg_gets(pointer, "User-Id") else { return nil }
        let s = String(cString: p)
        return s.isEmpty ? nil : s
    }

    /// Whether more frames of the same message follow this received one.
    @inline(__always) public var hasMore: Bool { zmq_msg_more(pointer) == 1 }

    /// Releases the content (running its free callback, if ZeroMQ holds no other reference),
    /// leaving an empty message.
    @inline(__always) public func clear() {
        zmq_msg_close(pointer)
        zmq_msg_init(pointer)
    }

    /// Moves the content of `other` here without copying (releasing what this held); `other`
    /// is left empty.
    @inline(__always) public func take(from other: ZmqMessage) {
        zmq_msg_move(pointer, other.pointer)
    }

    /// Replaces the content with a copy of `source`. Copies of up to 33 bytes live inside the
    /// message itself and allocate nothing.
    public func setCopy(of source: UnsafeRawBufferPointer) throws {
        zmq_msg_close(pointer)
        try check(zmq_msg_init_size(pointer, source.count), "zmq_msg_init_size(\(source.count))")
        if let s = source.baseAddress, source.count > 0 { memcpy(zmq_msg_data(pointer), s, source.count) }
    }

    /// Replaces the content with `source` itself, without copying. The memory is ZeroMQ's from
    /// here until `ledger` counts it released — possibly after the message was sent, on a ZeroMQ
    /// I/O thread: do not write to or free it before `ledger.awaitIdle` returns.
    public func setBorrowed(_ source: UnsafeRawBufferPointer, ledger: BorrowLedger) throws {
        guard let base = source.baseAddress, source.count > 0 else { return try setCopy(of: source) }
        zmq_msg_close(pointer)
        ledger.lend()
        let hint = Unmanaged.passRetained(ledger).toOpaque()
        let rc = zmq_msg_init_data(pointer, UnsafeMutableRawPointer(mutating: base), source.count, returnBorrowed, hint)
        if rc == -1 {
            Unmanaged<BorrowLedger>.fromOpaque(hint).release()
            ledger.giveBack()
            zmq_msg_init(pointer)
            throw WireError.zmq(call: "zmq_msg_init_data", code: zmq_errno())
        }
    }

    /// Replaces the content with `buffer`, handing it over to ZeroMQ without copying: ZeroMQ
    /// keeps a reference until it has sent the bytes, then releases it from its I/O thread.
    /// Do not write to `buffer` after this call.
    public func setOwned(_ buffer: OwnedBuffer) throws {
        zmq_msg_close(pointer)
        let hint = Unmanaged.passRetained(buffer).toOpaque()
        let rc = zmq_msg_init_data(pointer, buffer.base, buffer.count, releaseOwned, hint)
        if rc == -1 {
            Unmanaged<OwnedBuffer>.fromOpaque(hint).release()
            zmq_msg_init(pointer)
            throw WireError.zmq(call: "zmq_msg_init_data", code: zmq_errno())
        }
    }
}

/// Counts caller memory lent to ZeroMQ by zero-copy sends that ZeroMQ has not released yet.
///
/// Thread-safe: ZeroMQ returns loans from its I/O threads.
public final class BorrowLedger: Sendable {
    private let outstanding = Atomic<Int>(0)

    /// A ledger with nothing lent.
    public init() {}

    /// Loans not yet returned.
    public var outstandingCount: Int { outstanding.load(ordering: .acquiring) }

    func lend() { outstanding.wrappingAdd(1, ordering: .relaxed) }
    func giveBack() { outstanding.wrappingSubtract(1, ordering: .releasing) }

    /// Waits until every loan is returned (and the memory may be reused), or throws
    /// `WireError.timedOut` at `deadline`.
    public func awaitIdle(deadline: Deadline) throws {
        var spins = 0
        while outstanding.load(ordering: .acquiring) != 0 {
            if deadline.hasPassed {
                throw WireError.timedOut("\(outstandingCount) zero-copy sends still held by ZeroMQ")
            }
            spins += 1
            if spins < 64 { sched_yield() } else { usleep(50) }
        }
    }
}

/// Heap memory whose ownership can be handed to ZeroMQ (`ZmqMessage.setOwned`).
///
/// `@unchecked Sendable` (its last release may run in ZeroMQ's free callback, on an I/O thread):
/// `base` and `count` never change; the bytes belong to one side at a time — the filler until
/// the send, then ZeroMQ until its free callback has run.
public final class OwnedBuffer: @unchecked Sendable {
    /// First byte (64-byte aligned).
    public let base: UnsafeMutableRawPointer
    /// Size in bytes.
    public let count: Int

    /// `count` uninitialised bytes.
    public init(count: Int) {
        precondition(count >= 0, "negative buffer size")
        base = .allocate(byteCount: max(count, 1), alignment: 64)
        self.count = count
    }

    deinit { base.deallocate() }
}

// ZeroMQ's free callbacks. They may run on an I/O thread.
private func returnBorrowed(_ data: UnsafeMutableRawPointer?, _ hint: UnsafeMutableRawPointer?) {
    guard let hint else { return }
    Unmanaged<BorrowLedger>.fromOpaque(hint).takeRetainedValue().giveBack()
}

private func releaseOwned(_ data: UnsafeMutableRawPointer?, _ hint: UnsafeMutableRawPointer?) {
    guard let hint else { return }
    Unmanaged<OwnedBuffer>.fromOpaque(hint).release()
}
