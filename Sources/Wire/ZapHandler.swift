import Basics
import CZmq
#if canImport(Glibc)
import Glibc
#endif

/// Answers ZeroMQ's authentication requests (ZAP, ZeroMQ RFC 27) for every socket of one
/// context that has a ZAP domain: a CURVE client is admitted when its public key is one of
/// `allowed`, and the connection then carries that key's user id (`ZmqMessage.userID` on every
/// frame received over it); any other client, and any other mechanism, is refused. CURVE itself
/// has already proven that the client holds the secret key of the public key it presents.
///
/// Without a handler a CURVE server admits every client key; libzmq asks the handler of its
/// context at `inproc://zeromq.zap.01`, so there is at most one per context, bound before any
/// server socket accepts a connection.
///
/// One thread answers, polling in slices so that `stop` (or release) ends it promptly.
public final class ZapHandler: @unchecked Sendable {
    /// What was decided so far.
    public struct Counts: Sendable, Equatable {
        public var admitted = 0
        public var refused = 0
        /// The peer address and reason of the latest refusal, for logs.
        public var lastRefusal: String?
    }

    /// The ZAP domain servers of this handler set (`SocketOption.zapDomain`).
    public static let domain = "proclip"

    /// Kept alive while the handler's socket is open (a context ends only after its sockets).
    private let context: ZmqContext
    private let counts = Locked(Counts())
    private let stopping = Locked(false)
    private var thread: JoinableThread?

    /// Binds the context's ZAP endpoint and starts answering: `allowed` maps Z85 public keys to
    /// the user id their connections carry. Throws if a key is not Z85 or the endpoint is taken.
    public init(context: ZmqContext, allowed: [String: String]) throws {
        self.context = context
        var keys: [[UInt8]: String] = [:]
        for (z85, user) in allowed {
            guard let raw = CurveKeyPair.decode(z85) else { throw WireError.invalidArgument("ZAP: \(z85.prefix(8))… is not a Z85 CURVE key") }
            guard !user.isEmpty, user.utf8.count <= 255 else { throw WireError.invalidArgument("ZAP: user id of \(user.utf8.count) bytes") }
            keys[raw] = user
        }
        let socket = try context.socket(.rep)
        try socket.set(.linger(milliseconds: 0))
        try socket.bind("inproc://zeromq.zap.01")
        thread = JoinableThread("ZAP handler") { [counts, stopping, keys] in
            ZapHandler.serve(socket, allowed: keys, counts: counts, stopping: stopping)
        }
    }

    deinit { stop() }

    /// Admissions and refusals so far.
    public var decisions: Counts { counts.withLock { $0 } }

    /// Stops answering (a later handshake waits for its own timeout and fails) and joins the
    /// thread. Idempotent.
    public func stop() {
        stopping.withLock { $0 = true }
        thread?.join()
        thread = nil
    }

    private static func serve(_ socket: ZmqSocket, allowed: [[UInt8]: String], counts: Locked<Counts>, stopping: Locked<Bool>) {
        defer { socket.close() }
        let part = ZmqMessage()
        while !stopping.withLock({ $0 }) {
            guard (try? socket.waitReadable(milliseconds: 50)) == true else { continue }
            // version, request id, domain, address, routing id, mechanism, credentials…
            var frames: [[UInt8]] = []
            while true {
                guard (try? socket.receive(part)) == true else { break }
                frames.append(Array(part.bytes))
                let more = part.hasMore
                part.clear()
                if !more || frames.count > 8 { break }
            }
            guard frames.count >= 6 else { continue }  // not a ZAP request: nothing to answer
            let (status, user, reason) = decide(frames, allowed: allowed)
            counts.withLock {
                if status == "200" { $0.admitted += 1 } else {
                    $0.refused += 1
                    $0.lastRefusal = "\(String(decoding: frames[3], as: UTF8.self)): \(reason)"
                }
            }
            let reply: [[UInt8]] = [frames[0], frames[1], Array(status.utf8), Array(reason.utf8), Array(user.utf8), []]
            for (i, f) in reply.enumerated() {
                do {
                    try f.withUnsafeBytes { try part.setCopy(of: $0) }
                    _ = try socket.send(part, more: i < reply.count - 1)
                } catch { break }
            }
        }
    }

    /// The answer to one request: status code, user id, status text.
    static func decide(_ frames: [[UInt8]], allowed: [[UInt8]: String]) -> (String, String, String) {
        guard frames[0] == Array("1.0".utf8) else { return ("400", "", "unsupported ZAP version") }
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        guard mechanism == "CURVE" else { return ("400", "", "mechanism \(mechanism) is not allowed (CURVE only)") }
        guard frames.count == 7, frames[6].count == 32 else { return ("400", "", "malformed CURVE credentials") }
        guard let user = allowed[frames[6]] else { return ("400", "", "client key \(CurveKeyPair.encode(frames[6]).prefix(8))… is not one of this job's keys") }
        return ("200", user, "OK")
    }
}

extension CurveKeyPair {
    /// The 32 bytes of a Z85 key (40 characters), or nil.
    public static func decode(_ z85: String) -> [UInt8]? {
        guard z85.utf8.count == 40 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&out, z85) == nil ? nil : out
    }

    /// The Z85 text (40 characters) of a 32-byte key.
    public static func encode(_ raw: [UInt8]) -> String {
        precondition(raw.count == 32)
        var text = [CChar](repeating: 0, count: 41)
        _ = raw.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, 32) }
        return String(cString: text)
    }

    /// The public key of a Z85 secret key, or nil when it is not one.
    public static func publicKey(ofSecret secret: String) -> String? {
        guard secret.utf8.count == 40 else { return nil }
        var pub = [CChar](repeating: 0, count: 41)
        return zmq_curve_public(&pub, secret) == 0 ? String(cString: pub) : nil
    }
}
