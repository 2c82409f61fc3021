import CStreams
import Basics
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
///
/// Used from one thread at a time (the group's). Split by concern: connecting
/// (`DirectLinks+Connect.swift`), whole frames (`+Frames`), streaming exchanges (`+Exchange`),
/// endpoint parsing (`+Endpoints`); the state below is internal so that those files share it.
final class DirectLinks {
    /// What other ranks connect to: `tcp://host:port` or `ipc://path`.
    let endpoint: String
    let isTCP: Bool
    var listenFD: Int32
    private let unixPath: String?
    let kernelBufferBytes: Int
    var outgoing: [Int32] = []
    var incoming: [Int32] = []
    /// Per sender: received bytes, frames from `start`, read up to `fill`.
    var inbox: [UnsafeMutableRawPointer?] = []
    var start: [Int] = []
    var fill: [Int] = []
    var capacity = 0
    var maxPayload = 0
    let prefix = UnsafeMutableRawPointer.allocate(byteCount: DirectLinks.prefixBytes, alignment: 8)
    /// Length prefix and header of the frame `exchange` is receiving.
    let prefixIn = UnsafeMutableRawPointer.allocate(byteCount: DirectLinks.prefixBytes, alignment: 8)
    let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 3)
    /// pollfd scratch for waits that watch every incoming connection.
    var pollSet = UnsafeMutablePointer<pollfd>.allocate(capacity: 1)
    private var isClosed = false
    /// Per rank: its connection to this one has closed (`closedIn`), or this rank's to it
    /// (`closedOut`).
    var closedIn: [Bool] = [], closedOut: [Bool] = []

    /// Length prefix and header of every frame.
    static let prefixBytes = 4 + FrameHeader.byteCount
    /// Longest single sleep in a wait, so that an abandoned operation is noticed promptly.
    static let pollSliceMilliseconds = 50

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

    /// What a timeout waiting for `peer` adds when its connection has closed.
    func closedNote(_ peer: Int) -> String {
        closedIn[peer] ? " (rank \(peer) closed its direct connection)" : ""
    }

    /// Closes `peer`'s connection to this rank (after a frame that cannot be skipped).
    func dropConnection(from peer: Int) {
        Glibc.close(incoming[peer])
        incoming[peer] = -1
    }
}
