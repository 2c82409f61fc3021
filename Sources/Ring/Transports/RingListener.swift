import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The bound, receiving end of a rank's ring connections: one ZeroMQ PULL socket per stream.
///
/// Bind first, publish `endpoint` (a wildcard port resolved), then hand the listener to a
/// `RingGroup` together with the successor's published endpoint. The listener may be made on
/// one thread and handed to the group's thread across a synchronising hand-off.
public final class RingListener {
    /// What the predecessor connects to: the bound endpoint, or with several streams the
    /// comma-separated endpoints of all of them. Pass it unchanged as the predecessor's
    /// `successor`.
    public let endpoint: String
    /// Where every other rank connects for latency-bound messages (see `DirectLinks` and
    /// `RingOptions.directMaxWorld`).
    public var directEndpoint: String { direct.endpoint }
    let context: ZmqContext
    let sockets: [ZmqSocket]
    let direct: DirectLinks
    let options: RingOptions
    /// Where the predecessor puts payloads, for `ipc://` endpoints (nil: none, or shared memory
    /// could not be had — payloads then travel inside ZeroMQ messages).
    let sharedSlots: SharedSlots?
    /// Why there are no shared-memory slots on an `ipc://` endpoint, if that failed.
    public let sharedMemoryProblem: String?

    /// Binds `endpoint`: `tcp://host:port`, `tcp://host:*` (any free port) or `ipc://path`.
    /// The resolved endpoints are what peers connect to, so across hosts bind this host's
    /// routable address, not the `*` / `0.0.0.0` wildcard.
    /// With `streams` > 1, stream k binds port + k (each a free port with `*`), or `path.k`;
    /// the direct links' listener (a plain stream socket) binds `direct` when given (its endpoint
    /// travels in the hello, so any free port will do), else port + streams, or `path.direct`.
    public init(bind endpoint: String, direct: String? = nil, options: RingOptions = RingOptions()) throws {
        try options.validate()
        self.options = options
        context = try ZmqContext(ioThreads: options.streams)
        var sockets: [ZmqSocket] = []
        var bound: [String] = []
        for k in 0..<options.streams {
            let s = try context.socket(.pull)
            try configure(s, options: options)
            // No frame exceeds a segment or a hello (headers are 32 bytes).
            try s.set(.maxMessageSize(max(options.segmentBytes, RingGroup.helloBytes)))
            try s.bind(try RingListener.streamEndpoint(endpoint, k))
            bound.append(try s.lastEndpoint())
            sockets.append(s)
        }
        self.sockets = sockets
        self.endpoint = bound.joined(separator: ",")
        self.direct = try DirectLinks(
            bind: try direct ?? RingListener.streamEndpoint(endpoint, options.streams, direct: true),
            kernelBufferBytes: options.kernelBufferBytes)
        var slots: SharedSlots?, problem: String?
        if endpoint.hasPrefix("ipc://") && options.sharedMemorySlots > 0 {
            do {
                slots = try SharedSlots(creating: SharedSlots.name(for: bound[0]), slots: options.sharedMemorySlots, slotBytes: options.segmentBytes)
            } catch {
                problem = "\(error)"
            }
        }
        sharedSlots = slots
        sharedMemoryProblem = problem
    }

    /// Removes the socket files of `ipc://` endpoints (libzmq leaves them behind). Called by the
    /// transport when it closes: the next generation may bind the same paths.
    func removeSocketFiles() {
        for e in endpoint.split(separator: ",") + [Substring(directEndpoint)] where e.hasPrefix("ipc://") {
            unlink(String(e.dropFirst(6)))
        }
    }

    /// Removes what a rank bound at the `ipc://` endpoint `endpoint` (with the derived stream and
    /// direct paths) leaves behind when its process is killed: the socket files and its
    /// shared-memory slots. For launchers; a closing transport removes its own socket files.
    public static func removeLeftovers(of endpoint: String, streams: Int = 1) {
        guard endpoint.hasPrefix("ipc://") else { return }
        let paths = (0..<streams).compactMap { try? streamEndpoint(endpoint, $0) } + [(try? streamEndpoint(endpoint, 0, direct: true)) ?? ""]
        for e in paths where e.hasPrefix("ipc://") { unlink(String(e.dropFirst(6))) }
        shm_unlink(SharedSlots.name(for: endpoint))
    }

    /// Endpoint of stream `k` derived from a rank's endpoint.
    static func streamEndpoint(_ endpoint: String, _ k: Int, direct: Bool = false) throws -> String {
        if endpoint.hasPrefix("ipc://") { return direct ? "\(endpoint).direct" : k == 0 ? endpoint : "\(endpoint).\(k)" }
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

