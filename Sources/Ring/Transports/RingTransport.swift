import Basics
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Where a received message goes next, unchanged in size, without a copy.
public struct Forward: Sendable {
    /// The rank it is sent to.
    public var peer: Int
    /// Its new header.
    public var tag: FrameHeader

    /// A forward to `peer` under `tag`.
    public init(peer: Int, tag: FrameHeader) {
        self.peer = peer
        self.tag = tag
    }
}

/// What the collectives see of the network: tagged byte messages between ranks, every wait
/// bounded by a deadline. `RingGroup`'s algorithms use this protocol and nothing else of a
/// transport; how a transport joins a group (its rank, direct links, what it offers) is
/// `RingTransportSetup`, which only the group's hello round uses.
///
/// Implementations: `ZmqRingTransport` (ZeroMQ between ring neighbours over tcp or ipc, plain
/// stream connections for direct messages and exchanges, shared memory between ranks of one
/// host) and `MemoryRingTransport` (threads of one process: exact and fast algorithm tests).
///
/// Ordering: ring messages from one peer arrive in the order sent, per stream (stream
/// `chunk % streams`); direct messages (`MessageType.isDirect`) are matched by tag in any order.
/// A received message of an older generation is dropped and counted (`drops`); one of a newer
/// generation throws `RingError.generationChanged`; any other unexpected tag or size is a
/// `RingError.protocolViolation`. Running out of time throws `RingError.timedOut`.
///
/// Thread safety: the group calls every requirement from its one thread, one call at a time;
/// only `abandon()` may be called from any thread, at any time. Every call moves a whole
/// message (or one message each way), so calling through an existential costs one indirect
/// call per message, never per element.
public protocol RingTransport: AnyObject {
    /// Received messages dropped so far (malformed, or of an older generation).
    var drops: DropCounts { get }

    /// Sends `bytes` to `peer` under `tag`, without copying where the transport can: the memory
    /// must stay valid and unchanged until `awaitSendsReleased` returns.
    func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: FrameHeader, deadline: Deadline) throws

    /// Receives the next message from `peer`, which must carry `tag` and hold `byteCount`
    /// bytes; hands its payload to `consume` in place (it may write to it), then sends it on to
    /// `forward` if given. Messages of an older generation are dropped and counted on the way;
    /// one of a newer generation throws `RingError.generationChanged`.
    func receive(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline, forward: Forward?,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void) throws

    /// Sends `outgoing` to the successor `next` under `sendTag` while receiving the message of
    /// predecessor `prev` tagged `receiveTag`, of exactly `incoming.count` bytes; a nil tag skips
    /// that side. Returns where the received payload is: in `incoming`, or in memory of the
    /// transport's own (shared memory), readable until the next call on the transport. On
    /// return `outgoing` is no longer referenced. After a failure `incoming` holds no useful
    /// data. A transport may accept only its ring neighbours here (`invalidArgument` otherwise);
    /// one without a streaming path implements this with `exchangeBySendAndReceive`.
    @discardableResult
    func exchange(
        _ outgoing: UnsafeRawBufferPointer, to next: Int, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, from prev: Int, tag receiveTag: FrameHeader?,
        deadline: Deadline) throws -> UnsafeRawPointer?

    /// Waits until the transport no longer reads any memory passed to `send`.
    func awaitSendsReleased(deadline: Deadline) throws

    /// Makes a wait in progress (on another thread) throw `RingError.abandoned` promptly, and
    /// every later call too. Thread-safe.
    func abandon()

    /// Releases the transport's resources; later calls throw `RingError.closed`. Messages still
    /// queued get up to `lingerMilliseconds` to leave (0: dropped at once; a transport that
    /// hands messages over synchronously has none). When it returns, no caller memory is
    /// referenced. Idempotent.
    func close(lingerMilliseconds: Int)
}

extension RingTransport {
    /// Closes at once, dropping anything still queued (`close(lingerMilliseconds: 0)`).
    public func close() { close(lingerMilliseconds: 0) }

    /// `exchange` as a `send` to `next` then a `receive` from `prev` copied into `incoming`:
    /// correct over any transport, through its buffers. Returns `incoming`'s address.
    @discardableResult
    public func exchangeBySendAndReceive(
        _ outgoing: UnsafeRawBufferPointer, to next: Int, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, from prev: Int, tag receiveTag: FrameHeader?,
        deadline: Deadline
    ) throws -> UnsafeRawPointer? {
        if let sendTag { try send(outgoing, to: next, tag: sendTag, deadline: deadline) }
        if let receiveTag {
            try receive(from: prev, tag: receiveTag, byteCount: incoming.count, deadline: deadline, forward: nil) {
                if $0.count > 0 { memcpy(incoming.baseAddress!, $0.baseAddress!, $0.count) }
            }
        }
        try awaitSendsReleased(deadline: deadline)
        return UnsafeRawPointer(incoming.baseAddress)
    }
}

/// How a received header relates to the one expected: true when it is that one, false when it
/// is of an older generation (to drop); throws for a newer generation or anything else.
@inline(__always)
func classify(_ got: FrameHeader, expected: FrameHeader) throws -> Bool {
    if got == expected { return true }
    if got.generation < expected.generation { return false }  // stale: drop it
    if got.generation > expected.generation {
        throw RingError.generationChanged(ours: expected.generation, seen: got.generation)
    }
    throw RingError.protocolViolation("expected \(expected), received \(got)")
}
