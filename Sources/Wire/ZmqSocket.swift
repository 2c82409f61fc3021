import CZmq

/// One ZeroMQ socket. Owned by one thread at a time (hand it to another thread only across a
/// synchronising hand-off); closed on `close()` or when released.
///
/// Sends and receives never block here: they return `false` when ZeroMQ would block, and the
/// caller waits with `waitReadable`/`waitWritable` against a deadline.
public final class ZmqSocket {
    /// The socket's type.
    public let type: SocketType
    let context: ZmqContext
    private(set) var handle: UnsafeMutableRawPointer?

    init(context: ZmqContext, type: SocketType) throws {
        guard let handle = zmq_socket(context.handle, type.raw) else {
            throw WireError.zmq(call: "zmq_socket", code: zmq_errno())
        }
        self.context = context
        self.type = type
        self.handle = handle
        try set(.linger(milliseconds: 0))
    }

    deinit { close() }

    /// Closes the socket, dropping whatever it still queues (linger is 0 unless changed).
    public func close() {
        if let h = handle { zmq_close(h) }
        handle = nil
    }

    @inline(__always)
    func open() throws -> UnsafeMutableRawPointer {
        guard let h = handle else { throw WireError.invalidArgument("socket is closed") }
        return h
    }

    /// Binds to `endpoint` (`tcp://host:port`, `tcp://host:*`, `ipc://path`, `inproc://name`).
    public func bind(_ endpoint: String) throws {
        let h = try open()
        try check(zmq_bind(h, endpoint), "zmq_bind(\(endpoint))")
    }

    /// Connects to `endpoint`; ZeroMQ connects (and reconnects) in the background.
    public func connect(_ endpoint: String) throws {
        let h = try open()
        try check(zmq_connect(h, endpoint), "zmq_connect(\(endpoint))")
    }

    /// The endpoint last bound, with a wildcard port resolved (`tcp://127.0.0.1:41234`).
    public func lastEndpoint() throws -> String {
        let h = try open()
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        try check(zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, &buffer, &size), "zmq_getsockopt(LAST_ENDPOINT)")
        return String(cString: buffer)
    }

    /// Sends `message` as one frame (`more`: further frames of the same message follow).
    /// On success ZeroMQ owns the content and `message` is left empty; returns `false` when the
    /// socket cannot take it now (high-water mark, or no peer for a ROUTER/PUSH), leaving
    /// `message` untouched.
    @inline(__always)
    public func send(_ message: ZmqMessage, more: Bool = false) throws -> Bool {
        let h = try open()
        let flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)
        let rc = retryingEINTR { zmq_msg_send(message.pointer, h, flags) }
        if rc >= 0 { return true }
        let code = zmq_errno()
        if code == EAGAIN { return false }
        throw WireError.zmq(call: "zmq_msg_send", code: code)
    }

    /// Receives one frame into `message` (releasing what it held); `false` when none is queued.
    @inline(__always)
    public func receive(_ message: ZmqMessage) throws -> Bool {
        let h = try open()
        let rc = retryingEINTR { zmq_msg_recv(message.pointer, h, ZMQ_DONTWAIT) }
        if rc >= 0 { return true }
        let code = zmq_errno()
        if code == EAGAIN { return false }
        throw WireError.zmq(call: "zmq_msg_recv", code: code)
    }

    /// Waits up to `milliseconds` (0: just look) until a message can be received.
    @inline(__always)
    public func waitReadable(milliseconds: Int) throws -> Bool {
        try wait(events: Int16(ZMQ_POLLIN), milliseconds: milliseconds)
    }

    /// Waits up to `milliseconds` (0: just look) until a message can be sent.
    @inline(__always)
    public func waitWritable(milliseconds: Int) throws -> Bool {
        try wait(events: Int16(ZMQ_POLLOUT), milliseconds: milliseconds)
    }

    private func wait(events: Int16, milliseconds: Int) throws -> Bool {
        let h = try open()
        var item = zmq_pollitem_t(socket: h, fd: 0, events: events, revents: 0)
        let rc = zmq_poll(&item, 1, milliseconds)
        if rc == -1 {
            let code = zmq_errno()
            if code == EINTR { return false }
            throw WireError.zmq(call: "zmq_poll", code: code)
        }
        return item.revents & events != 0
    }
}

/// Waits on several sockets at once (the coordinator's ROUTER beside an `inproc://` wake-up
/// socket, say). The item list is built once; `poll` allocates nothing.
public final class Poller {
    private let sockets: [ZmqSocket]
    private let items: UnsafeMutablePointer<zmq_pollitem_t>

    /// A poller over `sockets`, each watched for readability (and writability where asked).
    public init(_ sockets: [ZmqSocket], writable: Set<Int> = []) throws {
        self.sockets = sockets
        items = .allocate(capacity: max(sockets.count, 1))
        for (i, s) in sockets.enumerated() {
            let events = Int16(ZMQ_POLLIN) | (writable.contains(i) ? Int16(ZMQ_POLLOUT) : 0)
            items[i] = zmq_pollitem_t(socket: try s.open(), fd: 0, events: events, revents: 0)
        }
    }

    deinit { items.deallocate() }

    /// Waits up to `milliseconds` (−1 is refused: every wait is bounded); returns how many
    /// sockets are ready.
    public func poll(milliseconds: Int) throws -> Int {
        guard milliseconds >= 0 else { throw WireError.invalidArgument("unbounded poll") }
        let rc = zmq_poll(items, Int32(sockets.count), milliseconds)
        if rc == -1 {
            let code = zmq_errno()
            if code == EINTR { return 0 }
            throw WireError.zmq(call: "zmq_poll", code: code)
        }
        return Int(rc)
    }

    /// Whether socket `index` was readable at the last `poll`.
    public func isReadable(_ index: Int) -> Bool { items[index].revents & Int16(ZMQ_POLLIN) != 0 }

    /// Whether socket `index` was writable at the last `poll`.
    public func isWritable(_ index: Int) -> Bool { items[index].revents & Int16(ZMQ_POLLOUT) != 0 }
}
