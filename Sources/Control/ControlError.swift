import FoundationEssentials

/// A control message body: JSON on the wire, every field checked on arrival.
public protocol ControlPayload: Codable, Sendable {
    /// The message unchanged when every field holds a value it may hold; otherwise throws a
    /// `ControlError` naming the message, the field and the problem.
    func validated() throws -> Self
    /// The name errors use ("Assignment", "StatusReport.Worker").
    static var messageName: String { get }
}

/// Why a received control message was refused: it did not decode, or a field is out of range.
/// The description names the message and the field, e.g. "Assignment.rank 5 outside 0..<4".
public struct ControlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message type's name ("Assignment", "StatusReport.Worker", …).
    public let message: String
    /// The field at fault (dotted for nested fields), when one is.
    public let field: String?
    /// What is wrong with it.
    public let problem: String
    /// True when the payload is not this message's JSON at all (a different version's message,
    /// or garbage), false when it decoded but a field is out of range.
    public let undecodable: Bool

    /// A field that holds a value it may not hold.
    public init(_ message: String, _ field: String?, _ problem: String) {
        self.message = message
        self.field = field
        self.problem = problem
        undecodable = false
    }

    /// A payload that does not decode as `message`.
    public init(undecodable message: String, _ error: any Error) {
        self.message = message
        undecodable = true
        guard let e = error as? DecodingError else {
            field = nil
            problem = "does not decode: \(error)"
            return
        }
        func path(_ p: [any CodingKey]) -> String? {
            p.isEmpty ? nil : p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let key, let c):
            field = path(c.codingPath + [key])
            problem = "missing"
        case .valueNotFound(let type, let c):
            field = path(c.codingPath)
            problem = "null where \(type) is needed"
        case .typeMismatch(let type, let c):
            field = path(c.codingPath)
            problem = "not a \(type)"
        case .dataCorrupted(let c):
            field = path(c.codingPath)
            problem = "not valid here: \(c.debugDescription)"
        @unknown default:
            field = nil
            problem = "does not decode: \(error)"
        }
    }

    /// "Message.field problem" ("Assignment.rank 5 outside 0..<4"), or "Message: problem".
    public var description: String {
        guard let field else { return "\(message): \(problem)" }
        return undecodable ? "\(message).\(field): \(problem)" : "\(message).\(field) \(problem)"
    }
}

extension ControlPayload {
    /// Decodes `bytes` as this message's JSON, then checks every field (`validated()`).
    public static func decoded(from bytes: [UInt8]) throws -> Self {
        let value: Self
        do {
            value = try JSONDecoder().decode(Self.self, from: Data(bytes))
        } catch {
            throw ControlError(undecodable: messageName, error)
        }
        return try value.validated()
    }

    /// The type's own name.
    public static var messageName: String { String(describing: Self.self) }
}

/// A batch of messages (step reports travel in batches): 1…`ControlLimits.maxBatch` of them,
/// each checked.
extension Array: ControlPayload where Element: ControlPayload {
    public static var messageName: String { "[\(Element.messageName)]" }

    public func validated() throws -> [Element] {
        guard (1...ControlLimits.maxBatch).contains(count) else {
            throw ControlError(Self.messageName, "count", "\(count) outside 1...\(ControlLimits.maxBatch)")
        }
        for e in self { _ = try e.validated() }
        return self
    }
}
