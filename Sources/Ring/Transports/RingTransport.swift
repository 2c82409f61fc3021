import Wire
#if canImport(Glibc)
import Glibc
import Basics
#endif

/// Where a received message goes next, unchanged in size, without a copy.
public struct Forward: Sendable {
    /// The rank it is sent to.
    public var peer: Int
    /// Its new header.
    public var tag: FrameHeader

    public init(peer: Int, tag: FrameHeader) {
        self.peer = peer
        self.tag = tag
    }
}

/// What the collectives see of the network: ordered, tagged byte messages between ranks, with
/// every wait bounded by a deadline. Implementations: `ZmqRingTransport` (ZeroMQ over tcp or
/// ipc between ring neighbours, plus direct stream connections to every rank in small groups) and
/// `MemoryRingTransport` (threads in one process, for tests).
///
/// Ring messages from one peer arrive in the order sent (per stream: stream `chunk % streams`);
/// direct messages are matched by tag in any order.
/// A transport is used from one thread at a time, except `abandon()`.
public protocol RingTransport: AnyObject {
    /// This rank, in `0..<worldSize`.
    var rank: Int { get }
    /// Number of ranks.
    var worldSize: Int { get }
    /// Received messages dropped so far (malformed, or of an older generation).
    var drops: DropCounts { get }
    /// Where other ranks reach this one directly (messages of a type that `isDirect`), or nil
    /// when the transport offers no direct connections.
    var directEndpoint: String? { get }

    /// Connects to every rank's direct endpoint (`endpoints[rank]` is this rank's own) under
    /// `generation`, and waits until every other rank has connected to this one — or, with
    /// `ringNeighboursOnly`, to the successor's, waiting for the predecessor (enough for
    /// `exchange`).
    func connectDirect(_ endpoints: [String], generation: UInt64, ringNeighboursOnly: Bool, deadline: Deadline) throws

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

    /// Called once every rank of the group is known to be up (after the hello round): the
    /// transport may now use resources its successor created, such as shared memory.
    func peersReady()

    /// Whether `exchange` moves payloads between the caller's memory and the ring neighbours'
    /// without intermediate buffers; the group then runs large all-reduces as a sequence of
    /// exchanges (only if every rank's options ask for it, see `RingOptions.directBulk`).
    var exchangesDirectly: Bool { get }

    /// Sends `outgoing` to the successor under `sendTag` while receiving the predecessor's
    /// message tagged `receiveTag`, of exactly `incoming.count` bytes; a nil tag skips that
    /// side. Returns where the received payload is: in `incoming`, or in memory of the
    /// transport's own (shared memory), readable until the next call on the transport. On
    /// return `outgoing` is no longer referenced. After a failure `incoming` holds no useful data.
    @discardableResult
    func exchange(
        _ outgoing: UnsafeRawBufferPointer, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, tag receiveTag: FrameHeader?, deadline: Deadline) throws -> UnsafeRawPointer?

    /// Waits until the transport no longer reads any memory passed to `send`.
    func awaitSendsReleased(deadline: Deadline) throws

    /// Makes a wait in progress (on another thread) throw `RingError.abandoned` promptly, and
    /// every later one too. Thread-safe.
    func abandon()

    /// Releases the transport's resources; when it returns, no caller memory is referenced.
    func close()
}

extension RingTransport {
    public func peersReady() {}

    public var exchangesDirectly: Bool { false }

    /// `exchange` from `send` and `receive`: correct over any transport, through its buffers.
    @discardableResult
    public func exchange(
        _ outgoing: UnsafeRawBufferPointer, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, tag receiveTag: FrameHeader?, deadline: Deadline
    ) throws -> UnsafeRawPointer? {
        let w = worldSize
        if let sendTag { try send(outgoing, to: (rank + 1) % w, tag: sendTag, deadline: deadline) }
        if let receiveTag {
            try receive(from: (rank + w - 1) % w, tag: receiveTag, byteCount: incoming.count, deadline: deadline, forward: nil) {
                if $0.count > 0 { memcpy(incoming.baseAddress!, $0.baseAddress!, $0.count) }
            }
        }
        try awaitSendsReleased(deadline: deadline)
        return UnsafeRawPointer(incoming.baseAddress)
    }
}

/// How a received header relates to the one expected.
@inline(__always)
func classify(_ got: FrameHeader, expected: FrameHeader) throws -> Bool {
    if got == expected { return true }
    if got.generation < expected.generation { return false }  // stale: drop it
    if got.generation > expected.generation {
        throw RingError.generationChanged(ours: expected.generation, seen: got.generation)
    }
    throw RingError.protocolViolation("expected \(expected), received \(got)")
}
