import Basics
import Wire

/// Asks a coordinator for its status over a DEALER socket; every wait is bounded.
public final class StatusClient {
    public let endpoint: String
    public let security: ControlSecurity
    private let context: ZmqContext
    private let channel: ControlSocket

    /// A client of the coordinator at `endpoint`, with the job's status (or worker) keys, or
    /// insecure.
    public init(endpoint: String, security: ControlSecurity = .insecure) throws {
        self.endpoint = endpoint
        self.security = security
        context = try ZmqContext(ioThreads: 1)
        let socket = try context.socket(.dealer)
        try socket.set(.linger(milliseconds: 0))
        try socket.set(.maxMessageSize(ControlLimits.json + 4096))
        try security.configureClient(socket)
        try socket.connect(endpoint)
        channel = ControlSocket(socket: socket, accepting: ControlLimits.statusAccepts)
    }

    deinit {
        channel.socket.close()
        context.terminate()
    }

    /// The coordinator's status, or an error when it does not answer within `timeout` seconds.
    public func query(timeout: Double = 2) throws -> StatusReport {
        while try channel.receive() != nil {}  // late answers to earlier questions
        try channel.send(.statusRequest, StatusRequest())
        let deadline = Deadline.after(seconds: timeout)
        while !deadline.hasPassed {
            let ms = max(1, Int((Double(deadline.nanoseconds) - Double(Deadline.now().nanoseconds)) / 1e6))
            if try channel.wait(milliseconds: min(ms, 100)) {
                while let m = try channel.receive() {
                    if m.header.type == .statusReply, let r = channel.decode(StatusReport.self, from: m) { return r }
                }
            }
        }
        if let refused = channel.intake.lastRefusal {
            throw WireError.timedOut("the coordinator at \(endpoint) answered, but its status was refused (\(refused)) — is it another proclip version?")
        }
        throw WireError.timedOut("no coordinator answered at \(endpoint) within \(timeout) s — is `proclip coordinator` running there"
            + (security.keys == nil ? ", and insecure? A secured job answers only holders of its keys (--keys RUN/keys)" : ", with these keys?"))
    }
}
