import CZmq

/// A failure of the ZeroMQ layer. Every libzmq call that can fail is checked and reported as one
/// of these, naming the call and libzmq's error text.
public enum WireError: Error, Equatable, CustomStringConvertible {
    /// A libzmq call returned an error: the call (with its argument, where useful) and `errno`.
    case zmq(call: String, code: Int32)
    /// A value handed to this layer was out of range or malformed; the text says which.
    case invalidArgument(String)
    /// A wait ran past its deadline.
    case timedOut(String)

    /// The libzmq error number of a failed call, if this is one.
    public var code: Int32? {
        if case .zmq(_, let code) = self { return code }
        return nil
    }

    public var description: String {
        switch self {
        case .zmq(let call, let code): return "\(call): \(String(cString: zmq_strerror(code)))"
        case .invalidArgument(let text): return "invalid argument: \(text)"
        case .timedOut(let text): return "timed out: \(text)"
        }
    }
}

/// Throws `WireError.zmq` with libzmq's current errno when `rc` is −1.
@inline(__always)
func check(_ rc: Int32, _ call: @autoclosure () -> String) throws {
    if rc == -1 { throw WireError.zmq(call: call(), code: zmq_errno()) }
}

/// Runs `body` again while it fails with EINTR (a signal arrived during a blocking call).
@inline(__always)
func retryingEINTR(_ body: () -> Int32) -> Int32 {
    while true {
        let rc = body()
        if rc != -1 || zmq_errno() != EINTR { return rc }
    }
}
