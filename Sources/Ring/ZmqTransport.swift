import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The bound, receiving end of a rank's ring connections: one ZeroMQ PULL socket per stream.
///
/// Bind first, publish `endpoint` (a wildcard port resolved), then hand the listener to a
/// `RingGroup` together with the successor's published endpoint.
public final class RingListener {
    /// What the predecessor connects to: the bound endpoint, or with several streams the
    /// comma-separated endpoints of all of them. Pass it unchanged as the predecessor's
    /// `successor`.
    public let endpoint: String
    let context: ZmqContext
    let sockets: [ZmqSocket]
    let options: RingOptions

    /// Binds `endpoint`: `tcp://host:port`, `tcp://host:*` (any free port) or `ipc://path`.
    /// With `streams` > 1, stream k binds port + k (each a free port with `*`), or `path.k`.
    public init(bind endpoint: String, options: RingOptions = RingOptions()) throws {
        try options.validate()
        self.options = options
        context = try ZmqContext(ioThreads: options.streams)
        var sockets: [ZmqSocket] = []
        var bound: [String] = []
        for k in 0..<options.streams {
            let s = try context.socket(.pull)
            try configure(s, options: options)
            // No frame exceeds a segment (headers are 32 bytes, hello payloads 20).
            try s.set(.maxMessageSize(max(options.segmentBytes, RingGroup.helloBytes, FrameHeader.byteCount)))
            try s.bind(try RingListener.streamEndpoint(endpoint, k))
            bound.append(try s.lastEndpoint())
            sockets.append(s)
        }
        self.sockets = sockets
        self.endpoint = bound.joined(separator: ",")
    }

    /// Endpoint of stream `k` derived from a rank's endpoint.
    static func streamEndpoint(_ endpoint: String, _ k: Int) throws -> String {
        if endpoint.hasPrefix("ipc://") { return k == 0 ? endpoint : "\(endpoint).\(k)" }
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else {
            throw RingError.invalidArgument("endpoint \(endpoint): expected tcp://host:port or ipc://path")
        }
        let port = endpoint[endpoint.index(after: colon)...]
        if k == 0 || port == "*" { return endpoint }
        guard let p = Int(port), p + k <= 65535 else { throw RingError.invalidArgument("endpoint \(endpoint): bad port") }
        return "\(endpoint[..<colon]):\(p + k)"
    }
}

/// Options every data-plane socket gets, set explicitly.
func configure(_ s: ZmqSocket, options: RingOptions) throws {
    try s.set(.linger(milliseconds: 0))
    // No high-water mark: the ring bounds what is in flight by itself, and a finite mark could
    // deadlock its first step, where every rank sends a whole block before receiving.
    try s.set(.sendHighWaterMark(0))
    try s.set(.receiveHighWaterMark(0))
    try s.set(.immediate(false))
    try s.set(.reconnectInterval(20, max: 500))
    let hb = options.heartbeatMilliseconds
    try s.set(.heartbeat(interval: hb, timeout: 3 * hb, ttl: 3 * hb))
    if options.kernelBufferBytes > 0 {
        try s.set(.kernelBuffers(send: options.kernelBufferBytes, receive: options.kernelBufferBytes))
    }
}

/// The ZeroMQ ring transport: receives from the predecessor on the listener's PULL sockets and
/// sends to the successor over PUSH sockets, one connection per stream; message k of an
/// operation travels on stream `k % streams`, so each stream stays in order.
///
/// Sends of more than 33 bytes are zero-copy: ZeroMQ reads the caller's memory from its I/O
/// thread until it has written it to the socket (tracked by a `BorrowLedger`). Received payloads
/// are used in place and forwarded without a copy. The only per-message allocations are
/// libzmq's own (its buffer for each large received frame, and a small record per zero-copy
/// send); glibc reuses them as long as segments stay below its mmap threshold.
public final class ZmqRingTransport: RingTransport {
    public let rank: Int
    public let worldSize: Int
    public var drops: DropCounts { validator.drops }
    private let listener: RingListener
    private let pushes: [ZmqSocket]
    private let headerIn = ZmqMessage(), payloadIn = ZmqMessage()
    private let headerOut = ZmqMessage(), payloadOut = ZmqMessage()
    private var validator: FrameValidator
    private let ledger = BorrowLedger()
    private let abandoned = Atomic<Bool>(false)
    private var isClosed = false
    private let streams: Int
    private let spinNanoseconds: UInt64
    /// Longest single sleep in a wait, so that `abandon()` is noticed promptly.
    private let pollSliceMilliseconds = 50

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
        validator = FrameValidator(accepting: MessageType.ringTypes.map {
            ($0, $0 == .ringHello ? RingGroup.helloBytes : listener.options.segmentBytes)
        })
        var pushes: [ZmqSocket] = []
        if worldSize > 1 {
            let targets = successor.split(separator: ",").map(String.init)
            guard targets.count == streams else {
                throw RingError.invalidArgument("successor \(successor): \(targets.count) endpoints for \(streams) streams")
            }
            for t in targets {
                let s = try listener.context.socket(.push)
                try configure(s, options: listener.options)
                try s.connect(t)
                pushes.append(s)
            }
        }
        self.pushes = pushes
    }

    deinit { close() }

    private var successor: Int { (rank + 1) % worldSize }
    private var predecessor: Int { (rank + worldSize - 1) % worldSize }

    public func send(_ bytes: UnsafeRawBufferPointer, to peer: Int, tag: FrameHeader, deadline: Deadline) throws {
        try checkUsable()
        guard peer == successor, worldSize > 1 else {
            throw RingError.invalidArgument("rank \(rank) sends only to its successor \(successor), not \(peer)")
        }
        if bytes.count <= 33 {
            try payloadOut.setCopy(of: bytes)
        } else {
            try payloadOut.setBorrowed(bytes, ledger: ledger)
        }
        do {
            try push(tag, payloadOut, deadline: deadline)
        } catch {
            payloadOut.clear()  // returns the loan
            throw error
        }
    }

    private func push(_ tag: FrameHeader, _ payload: ZmqMessage, deadline: Deadline) throws {
        let socket = pushes[Int(tag.chunk) % streams]
        while try !socket.sendFrame(tag, payload: payload, scratch: headerOut) {
            try checkUsable()
            let ms = deadline.remainingMilliseconds(cap: pollSliceMilliseconds)
            if ms == 0 { throw RingError.timedOut(waitingFor: "room to send \(tag) to rank \(successor)", seconds: 0) }
            _ = try socket.waitWritable(milliseconds: ms)
        }
    }

    public func receive(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline, forward: Forward?,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        try checkUsable()
        guard peer == predecessor, worldSize > 1 else {
            throw RingError.invalidArgument("rank \(rank) receives only from its predecessor \(predecessor), not \(peer)")
        }
        let socket = listener.sockets[Int(tag.chunk) % streams]
        var spinUntil: UInt64 = 0
        while true {
            switch try socket.receiveFrame(header: headerIn, payload: payloadIn, validator: &validator) {
            case .none:
                if spinNanoseconds > 0 {
                    let now = Deadline.now().nanoseconds
                    if spinUntil == 0 { spinUntil = now &+ spinNanoseconds }
                    if now < spinUntil {
                        sched_yield()
                        continue
                    }
                }
                try checkUsable()
                let ms = deadline.remainingMilliseconds(cap: pollSliceMilliseconds)
                if ms == 0 { throw RingError.timedOut(waitingFor: "\(tag) from rank \(peer)", seconds: 0) }
                _ = try socket.waitReadable(milliseconds: ms)
            case .dropped:
                continue
            case .frame(let header):
                guard try classify(header, expected: tag) else {
                    validator.record(.stale)
                    payloadIn.clear()
                    continue
                }
                guard payloadIn.count == byteCount else {
                    let n = payloadIn.count
                    payloadIn.clear()
                    throw RingError.protocolViolation("\(tag): \(n) bytes from rank \(peer), expected \(byteCount)")
                }
                try consume(payloadIn.bytes)
                if let forward {
                    guard forward.peer == successor else {
                        throw RingError.invalidArgument("rank \(rank) forwards only to its successor, not \(forward.peer)")
                    }
                    try push(forward.tag, payloadIn, deadline: deadline)
                } else {
                    payloadIn.clear()
                }
                return
            }
        }
    }

    public func awaitSendsReleased(deadline: Deadline) throws {
        do { try ledger.awaitIdle(deadline: deadline) } catch {
            throw RingError.timedOut(waitingFor: "ZeroMQ to release \(ledger.outstandingCount) zero-copy sends", seconds: 0)
        }
    }

    public func abandon() { abandoned.store(true, ordering: .releasing) }

    /// Closes the sockets, dropping anything unsent, and shuts the context down; on return
    /// ZeroMQ has released every zero-copy send.
    public func close() {
        if isClosed { return }
        isClosed = true
        headerIn.clear(); payloadIn.clear(); headerOut.clear(); payloadOut.clear()
        for s in pushes { s.close() }
        for s in listener.sockets { s.close() }
        listener.context.terminate()
    }

    @inline(__always)
    private func checkUsable() throws {
        if abandoned.load(ordering: .acquiring) { throw RingError.abandoned }
        if isClosed { throw RingError.closed(reason: "transport closed") }
    }
}
