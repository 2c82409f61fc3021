import FoundationEssentials
import Wire

/// One control-plane message as received: its header (type, generation, step) and payload bytes,
/// and for a ROUTER socket the peer it came from.
public struct ControlMessage: Sendable {
    public let header: FrameHeader
    public let payload: [UInt8]
    /// The sender's routing identity (ROUTER sockets only).
    public let peer: [UInt8]?
    /// The user id the ZAP handler gave the sender's connection: `JobKeys.workerUser` or
    /// `JobKeys.statusUser` under CURVE, nil on an insecure socket.
    public let role: String?

    /// A received message (the socket makes these; tests and fuzzers too).
    public init(header: FrameHeader, payload: [UInt8], peer: [UInt8]?, role: String? = nil) {
        self.header = header
        self.payload = payload
        self.peer = peer
        self.role = role
    }

    /// Decodes the JSON payload and checks every field (`validated()`); throws a `ControlError`
    /// naming the message and field otherwise.
    public func decode<T: ControlPayload>(_ type: T.Type) throws -> T {
        try T.decoded(from: payload)
    }
}

/// The receiving side of a control socket without the socket: the header check (`FrameValidator`:
/// magic, version, type accepted, payload size) and the typed decode (`ControlMessage.decode`),
/// with every refusal counted. `ControlSocket` receives through one; the decoder's fuzz test
/// drives one directly.
public struct ControlIntake: Sendable {
    /// Checks headers; counts what it drops.
    public var validator: FrameValidator
    /// Payloads refused by `decode` (did not decode, or a field out of range).
    public private(set) var malformed = 0
    /// The most recent refusal, for logs.
    public private(set) var lastRefusal: ControlError?

    /// Accepts the `(type, largest payload)` pairs given.
    public init(accepting: [(MessageType, maxPayload: Int)]) {
        validator = FrameValidator(accepting: accepting)
    }

    /// Messages dropped or refused so far.
    public var dropped: Int { validator.drops.total + malformed }

    /// Checks one received message's frames: the message, or nil when it was dropped (counted).
    public mutating func admit(header: UnsafeRawBufferPointer, payload: [UInt8]?, extraFrames: Int = 0, peer: [UInt8]? = nil) -> ControlMessage? {
        switch validator.validate(header: header, payloadCount: payload?.count, extraFrames: extraFrames) {
        case .success(let h): return ControlMessage(header: h, payload: payload ?? [], peer: peer)
        case .failure: return nil
        }
    }

    /// `m`'s payload as a `T` whose every field passed its checks, or nil (counted as malformed).
    public mutating func decode<T: ControlPayload>(_ type: T.Type, from m: ControlMessage) -> T? {
        do {
            return try m.decode(T.self)
        } catch let e as ControlError {
            refuse(e)
        } catch {
            refuse(ControlError(undecodable: T.messageName, error))
        }
        return nil
    }

    /// Counts a message refused for another reason (an unexpected type, a chunk of no upload).
    public mutating func refuse(_ error: ControlError? = nil) {
        malformed += 1
        if let error { lastRefusal = error }
    }
}

/// Typed messages over a DEALER or ROUTER socket: a header frame and a JSON (or raw) payload;
/// a ROUTER prefixes the peer's identity. Every received message is validated (type known,
/// payload within its limit, frames as expected); a malformed one is dropped and counted.
public final class ControlSocket {
    public let socket: ZmqSocket
    public let isRouter: Bool
    /// The header checks and refusal counts.
    public private(set) var intake: ControlIntake
    private let headerMessage = ZmqMessage()
    private let payloadMessage = ZmqMessage()
    private let scratch = ZmqMessage()
    private let identity = ZmqMessage()

    public init(socket: ZmqSocket, accepting: [(MessageType, maxPayload: Int)]) {
        self.socket = socket
        isRouter = socket.type == .router
        intake = ControlIntake(accepting: accepting)
    }

    /// Drops counted so far (bad headers, unknown types, oversized payloads, refused payloads).
    public var dropped: Int { intake.dropped }

    /// Counts a message refused for a reason other than its payload's own checks (an unexpected
    /// type, a chunk of no upload, an upload larger than the model, …).
    public func noteMalformed(_ error: ControlError? = nil) { intake.refuse(error) }

    /// `m`'s payload as a `T` whose every field passed its checks, or nil (counted as malformed;
    /// never fatal).
    public func decode<T: ControlPayload>(_ type: T.Type, from m: ControlMessage) -> T? {
        intake.decode(T.self, from: m)
    }

    /// Sends `value` as JSON. Returns false if the socket cannot take it now (or, on a ROUTER,
    /// the peer is gone).
    @discardableResult
    public func send<T: Encodable>(_ type: MessageType, _ value: T, generation: UInt64 = 0, step: Int = 0, to peer: [UInt8]? = nil) throws -> Bool {
        let data = try JSONEncoder().encode(value)
        return try sendRaw(type, Array(data), generation: generation, step: step, to: peer)
    }

    /// Sends a raw payload.
    @discardableResult
    public func sendRaw(_ type: MessageType, _ bytes: [UInt8], generation: UInt64 = 0, step: Int = 0, chunk: Int = 0,
                        to peer: [UInt8]? = nil) throws -> Bool {
        if isRouter {
            guard let peer else { throw WireError.invalidArgument("a ROUTER message needs a peer") }
            try peer.withUnsafeBytes { try identity.setCopy(of: $0) }
            do {
                guard try socket.send(identity, more: true) else { return false }
            } catch {
                return false  // ZMQ_ROUTER_MANDATORY: the peer is gone
            }
        }
        try bytes.withUnsafeBytes { try payloadMessage.setCopy(of: $0) }
        let header = FrameHeader(type: type, generation: generation, step: UInt64(max(step, 0)), collective: 0, chunk: UInt32(chunk))
        return try socket.sendFrame(header, payload: payloadMessage, scratch: scratch)
    }

    /// Receives one message if one is queued (nil otherwise, or when it was dropped).
    public func receive() throws -> ControlMessage? {
        var peer: [UInt8]?
        if isRouter {
            guard try socket.receive(identity) else { return nil }
            peer = Array(identity.bytes)
            identity.clear()
        }
        switch try socket.receiveFrame(header: headerMessage, payload: payloadMessage, validator: &intake.validator) {
        case .none:
            return nil
        case .dropped:
            return nil
        case .frame(let h):
            let bytes = Array(payloadMessage.bytes)
            let role = payloadMessage.userID
            payloadMessage.clear()
            return ControlMessage(header: h, payload: bytes, peer: peer, role: role)
        }
    }

    /// Waits up to `milliseconds` for a message.
    public func wait(milliseconds: Int) throws -> Bool { try socket.waitReadable(milliseconds: milliseconds) }
}
