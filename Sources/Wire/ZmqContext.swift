import CZmq
import Synchronization

/// A ZeroMQ context: its I/O threads and the sockets made from it.
///
/// The context is thread-safe; its sockets are not. Terminating the context waits until every
/// socket made from it is closed, so sockets keep their context alive and are closed first.
///
/// `@unchecked Sendable` (for the raw `handle`): ZeroMQ contexts are thread-safe, the handle never
/// changes, and `terminated` is atomic, so any thread may make sockets or terminate.
public final class ZmqContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let terminated = Atomic<Bool>(false)

    /// Creates a context with `ioThreads` I/O threads (each one moves bytes for its sockets'
    /// connections; one is enough for a few gigabytes per second).
    public init(ioThreads: Int = 1) throws {
        guard (1...64).contains(ioThreads) else {
            throw WireError.invalidArgument("ioThreads \(ioThreads) not in 1...64")
        }
        guard let handle = zmq_ctx_new() else { throw WireError.zmq(call: "zmq_ctx_new", code: zmq_errno()) }
        self.handle = handle
        do {
            try check(zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreads)), "zmq_ctx_set(IO_THREADS)")
            // Never block termination on undelivered messages: every socket also sets linger 0.
            try check(zmq_ctx_set(handle, ZMQ_BLOCKY, 0), "zmq_ctx_set(BLOCKY)")
        } catch {
            zmq_ctx_term(handle)
            throw error
        }
    }

    /// Makes a socket of `type` (closed when released or by `close()`), with linger 0 set.
    public func socket(_ type: SocketType) throws -> ZmqSocket {
        try ZmqSocket(context: self, type: type)
    }

    /// Shuts the context down: waits for its sockets to be closed, and for the I/O threads to
    /// release every message they held (so every zero-copy free callback has run on return).
    /// Idempotent.
    public func terminate() {
        if terminated.exchange(true, ordering: .acquiringAndReleasing) { return }
        _ = retryingEINTR { zmq_ctx_term(handle) }
    }

    deinit { terminate() }
}

/// The socket types the project uses.
public enum SocketType: Sendable {
    /// Sends to connected peers (ring data plane, sending side).
    case push
    /// Receives from connected peers, fair-queued (ring data plane, receiving side).
    case pull
    /// Addressed sends and receives with a routing-id frame (the coordinator).
    case router
    /// Asynchronous request side of a ROUTER (a worker's control channel).
    case dealer
    /// Exclusive pair, for `inproc://` hand-offs between threads.
    case pair
    /// Synchronous reply side (the ZAP authentication handler).
    case rep

    var raw: Int32 {
        switch self {
        case .push: return ZMQ_PUSH
        case .pull: return ZMQ_PULL
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .pair: return ZMQ_PAIR
        case .rep: return ZMQ_REP
        }
    }
}
