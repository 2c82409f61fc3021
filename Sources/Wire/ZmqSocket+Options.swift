import CZmq

/// The socket options the project relies on, each set explicitly rather than left to
/// ZeroMQ's defaults (linger −1 hangs shutdown; high-water marks of 1000 messages; ROUTER
/// dropping unroutable messages silently).
public enum SocketOption: Sendable {
    /// How long `close` keeps undelivered messages (0: drop them; the project's default).
    case linger(milliseconds: Int)
    /// Messages queued for sending before sends would block (0: no limit).
    case sendHighWaterMark(Int)
    /// Messages queued on receipt before ZeroMQ stops reading the connection (0: no limit).
    case receiveHighWaterMark(Int)
    /// ROUTER: fail a send to an unknown routing id (EHOSTUNREACH) instead of dropping it.
    case routerMandatory(Bool)
    /// ZMTP heartbeats: ping every `interval`, drop the connection when no traffic came within
    /// `timeout`, and ask the peer to drop it after `ttl` (milliseconds; 0 disables).
    case heartbeat(interval: Int, timeout: Int, ttl: Int)
    /// First and largest reconnect interval (milliseconds).
    case reconnectInterval(Int, max: Int)
    /// Kernel socket buffer sizes in bytes (−1: the OS default).
    case kernelBuffers(send: Int, receive: Int)
    /// Largest inbound frame accepted; a peer sending a larger one is disconnected (−1: none).
    case maxMessageSize(Int)
    /// Queue messages only to completed connections.
    case immediate(Bool)
    /// This socket's routing id, as seen by a ROUTER peer (1…255 bytes).
    case routingId([UInt8])
    /// Accept CURVE-encrypted connections with this secret key (Z85, 40 characters).
    case curveServer(secretKey: String)
    /// Connect with CURVE to a server with `serverKey`, as `publicKey`/`secretKey` (Z85).
    case curveClient(serverKey: String, publicKey: String, secretKey: String)
    /// ZAP domain for authentication requests.
    case zapDomain(String)
}

extension ZmqSocket {
    /// Sets one option.
    public func set(_ option: SocketOption) throws {
        switch option {
        case .linger(let ms): try setInt(ZMQ_LINGER, ms, "LINGER")
        case .sendHighWaterMark(let n): try setInt(ZMQ_SNDHWM, n, "SNDHWM")
        case .receiveHighWaterMark(let n): try setInt(ZMQ_RCVHWM, n, "RCVHWM")
        case .routerMandatory(let on): try setInt(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, "ROUTER_MANDATORY")
        case .heartbeat(let interval, let timeout, let ttl):
            try setInt(ZMQ_HEARTBEAT_IVL, interval, "HEARTBEAT_IVL")
            try setInt(ZMQ_HEARTBEAT_TIMEOUT, timeout, "HEARTBEAT_TIMEOUT")
            try setInt(ZMQ_HEARTBEAT_TTL, ttl, "HEARTBEAT_TTL")
        case .reconnectInterval(let first, let max):
            try setInt(ZMQ_RECONNECT_IVL, first, "RECONNECT_IVL")
            try setInt(ZMQ_RECONNECT_IVL_MAX, max, "RECONNECT_IVL_MAX")
        case .kernelBuffers(let send, let receive):
            try setInt(ZMQ_SNDBUF, send, "SNDBUF")
            try setInt(ZMQ_RCVBUF, receive, "RCVBUF")
        case .maxMessageSize(let n):
            var v = Int64(n)
            try check(zmq_setsockopt(try open(), ZMQ_MAXMSGSIZE, &v, 8), "zmq_setsockopt(MAXMSGSIZE)")
        case .immediate(let on): try setInt(ZMQ_IMMEDIATE, on ? 1 : 0, "IMMEDIATE")
        case .routingId(let id):
            guard (1...255).contains(id.count) else { throw WireError.invalidArgument("routing id of \(id.count) bytes") }
            try setBytes(ZMQ_ROUTING_ID, id, "ROUTING_ID")
        case .curveServer(let secret):
            try setInt(ZMQ_CURVE_SERVER, 1, "CURVE_SERVER")
            try setKey(ZMQ_CURVE_SECRETKEY, secret, "CURVE_SECRETKEY")
        case .curveClient(let server, let pub, let secret):
            try setKey(ZMQ_CURVE_SERVERKEY, server, "CURVE_SERVERKEY")
            try setKey(ZMQ_CURVE_PUBLICKEY, pub, "CURVE_PUBLICKEY")
            try setKey(ZMQ_CURVE_SECRETKEY, secret, "CURVE_SECRETKEY")
        case .zapDomain(let domain): try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "ZAP_DOMAIN")
        }
    }

    /// Reads an integer option (for checks and tests).
    public func intOption(_ option: Int32) throws -> Int {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try check(zmq_getsockopt(try open(), option, &v, &size), "zmq_getsockopt(\(option))")
        return Int(v)
    }

    private func setInt(_ option: Int32, _ value: Int, _ name: String) throws {
        guard let v = Int32(exactly: value) else { throw WireError.invalidArgument("\(name) = \(value)") }
        var value32 = v
        try check(zmq_setsockopt(try open(), option, &value32, MemoryLayout<Int32>.size), "zmq_setsockopt(\(name))")
    }

    private func setBytes(_ option: Int32, _ bytes: [UInt8], _ name: String) throws {
        let h = try open()
        try bytes.withUnsafeBytes { b in
            try check(zmq_setsockopt(h, option, b.baseAddress, b.count), "zmq_setsockopt(\(name))")
        }
    }

    private func setKey(_ option: Int32, _ z85: String, _ name: String) throws {
        guard z85.utf8.count == 40 else { throw WireError.invalidArgument("\(name): a Z85 key has 40 characters") }
        // The 41-byte form (with its terminating NUL) tells libzmq the key is Z85 text.
        try setBytes(option, Array(z85.utf8) + [0], name)
    }
}

/// CURVE keys (Curve25519, Z85-encoded), for encrypting control and data connections between
/// hosts. Authenticating *which* client keys may connect needs a ZAP handler on
/// `inproc://zeromq.zap.01`; without one a CURVE server accepts any client key.
public struct CurveKeyPair: Sendable, Equatable {
    /// Public key, 40 Z85 characters.
    public let publicKey: String
    /// Secret key, 40 Z85 characters.
    public let secretKey: String

    /// A key pair as given (Z85 text; checked where it is used).
    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Whether this libzmq was built with CURVE.
    public static var isAvailable: Bool { zmq_has("curve") == 1 }

    /// A fresh random key pair.
    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        try check(zmq_curve_keypair(&pub, &sec), "zmq_curve_keypair")
        return CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }
}
