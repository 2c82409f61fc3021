import Wire

/// Why a collective failed. After any of these the group is closed: its sockets are shut, no
/// memory of the caller is referenced any more, and every later call throws `.closed`.
public enum RingError: Error, Equatable, CustomStringConvertible {
    /// No message came within `options.timeout`; `waitingFor` names the message and the peer.
    case timedOut(waitingFor: String, seconds: Double)
    /// A peer sent traffic of a newer generation: membership changed under this group.
    case generationChanged(ours: UInt64, seen: UInt64)
    /// `abandon()` was called (membership is changing).
    case abandoned
    /// A peer sent a well-formed message that does not fit this operation (the ranks disagree
    /// on the sequence of collectives, their counts, or the group's options).
    case protocolViolation(String)
    /// An argument was refused before anything was sent (all ranks refuse it alike when they
    /// pass the same values).
    case invalidArgument(String)
    /// The group was closed, by `close()` or by an earlier failure (named).
    case closed(reason: String)
    /// The transport failed.
    case transport(String)

    /// The error as one line for logs and failure reports.
    public var description: String {
        switch self {
        case .timedOut(let what, let s): return "timed out after \(s) s waiting for \(what)"
        case .generationChanged(let ours, let seen): return "generation changed: this group is \(ours), a peer sent \(seen)"
        case .abandoned: return "abandoned: membership is changing"
        case .protocolViolation(let text): return "protocol violation: \(text)"
        case .invalidArgument(let text): return "invalid argument: \(text)"
        case .closed(let reason): return "group closed (\(reason))"
        case .transport(let text): return "transport: \(text)"
        }
    }
}
