import FoundationEssentials
import Wire

/// One control-plane message as received: its header (type, generation, step) and payload bytes,
/// and for a ROUTER socket the peer it came from.
public struct ControlMessage {
    public let header: FrameHeader
    public let payload: [UInt8]
    /// The sender's routing identity (ROUTER sockets only).
    public let peer: [UInt8]?

    /// Decodes the JSON payload; nil (counted by the caller as malformed) when it does not parse.
    public func decode<T: Decodable>(_ type: T.Type) -> T? {
        try? JSONDecoder().decode(T.self, from: Data(payload))
    }
}

/// Typed messages over a DEALER or ROUTER socket: a header frame and a JSON (or raw) payload;
/// a ROUTER prefixes the peer's identity. Every received message is validated (type known,
/// payload within its limit, frames as expected); a malformed one is dropped and counted.
public final class ControlSocket {
    public let socket: ZmqSocket
    public let isRouter: Bool
    public private(set) var validator: FrameValidator
    /// JSON payloads that did not decode (counted by callers via `noteMalformed`).
    public private(set) var malformed = 0
    private let headerMessage = ZmqMessage()
    private let payloadMessage = ZmqMessage()
    private let scratch = ZmqMessage()
    private let identity = ZmqMessage()

    public init(socket: ZmqSocket, accepting: [(MessageType, maxPayload: Int)]) {
        self.socket = socket
        isRouter = socket.type == .router
        validator = FrameValidator(accepting: accepting)
    }

    /// Drops counted so far (bad headers, unknown types, oversized payloads, malformed JSON).
    public var dropped: Int { validator.drops.total + malformed }

    /// Counts a payload that did not decode.
    public func noteMalformed() { malformed += 1 }

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
        switch try socket.receiveFrame(header: headerMessage, payload: payloadMessage, validator: &validator) {
        case .none:
            return nil
        case .dropped:
            return nil
        case .frame(let h):
            let bytes = Array(payloadMessage.bytes)
            payloadMessage.clear()
            return ControlMessage(header: h, payload: bytes, peer: peer)
        }
    }

    /// Waits up to `milliseconds` for a message.
    public func wait(milliseconds: Int) throws -> Bool { try socket.waitReadable(milliseconds: milliseconds) }
}
