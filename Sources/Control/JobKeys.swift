import Basics
import FoundationEssentials
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A job's CURVE key material, as one process holds it.
///
/// `proclip keys new DIR` (and `launch`, in its run directory) writes three key files, one per
/// role, each readable by its owner only (mode 0600):
///
/// - `coordinator.key`: the coordinator's key pair, and the worker and status public keys it
///   admits;
/// - `worker.key`: the worker key pair (every worker of the job holds the same one) and the
///   coordinator's public key — it lets its holder register as a worker, receive the job's
///   config, join its ring and report for the rank it is given;
/// - `status.key`: the status key pair and the coordinator's public key — it lets its holder
///   read the job's status and nothing else.
///
/// A file is text, one `name = value` per line (lines starting with `#` are comments); keys are Z85 (40
/// characters). Processes take `--keys PATH`: a directory (the role's own file is read from it)
/// or one key file.
public struct JobKeys: Sendable, Equatable {
    /// Who holds a key file.
    public enum Role: String, Sendable, CaseIterable {
        case coordinator, worker, status

        /// The file name of this role's keys in a key directory.
        public var fileName: String { "\(rawValue).key" }
    }

    public let role: Role
    /// This role's own key pair.
    public let pair: CurveKeyPair
    /// The coordinator's public key (for the coordinator itself: its own).
    public let coordinatorPublic: String
    /// Public keys the coordinator admits (coordinator files only).
    public let workerPublic: String?
    public let statusPublic: String?

    /// The user ids the coordinator's ZAP handler gives each admitted key (what
    /// `ControlMessage.role` carries).
    public static let workerUser = "worker"
    public static let statusUser = "status"

    /// Fresh keys for every role.
    public static func generate() throws -> [JobKeys] {
        guard CurveKeyPair.isAvailable else {
            throw ControlKeyError("this libzmq has no CURVE support (zmq_has(\"curve\") is 0): install a libzmq built with libsodium, or run --insecure")
        }
        let coordinator = try CurveKeyPair.generate(), worker = try CurveKeyPair.generate(), status = try CurveKeyPair.generate()
        return [
            JobKeys(role: .coordinator, pair: coordinator, coordinatorPublic: coordinator.publicKey,
                    workerPublic: worker.publicKey, statusPublic: status.publicKey),
            JobKeys(role: .worker, pair: worker, coordinatorPublic: coordinator.publicKey, workerPublic: nil, statusPublic: nil),
            JobKeys(role: .status, pair: status, coordinatorPublic: coordinator.publicKey, workerPublic: nil, statusPublic: nil),
        ]
    }

    /// Writes fresh keys for every role into `directory` (created with mode 0700), each file
    /// whole or not at all, mode 0600. Refuses to replace existing keys unless `replace`.
    @discardableResult
    public static func create(in directory: String, replace: Bool = false) throws -> [JobKeys] {
        let existing = Role.allCases.map { "\(directory)/\($0.fileName)" }.filter(Files.exists)
        if !existing.isEmpty && !replace {
            throw ControlKeyError("\(existing[0]): keys exist already (workers holding them would be locked out): use them, choose another directory, or replace them (`proclip keys new --replace`)")
        }
        if !Files.exists(directory) {
            try Files.makeDirectories(directory)
            chmod(directory, 0o700)
        }
        let keys = try generate()
        for k in keys { try Files.writeAtomically("\(directory)/\(k.role.fileName)", Array(k.fileText.utf8), mode: 0o600) }
        return keys
    }

    /// The keys of `role` in the key directory `directory`, made there first (every role's)
    /// when it holds none; `created` says which. A run directory's `keys` use this, so a resumed
    /// run keeps the keys its workers hold.
    public static func loadOrCreate(in directory: String, role: Role) throws -> (keys: JobKeys, created: Bool) {
        if Files.exists("\(directory)/\(Role.coordinator.fileName)") { return (try load(directory, role: role), false) }
        try create(in: directory)
        return (try load(directory, role: role), true)
    }

    /// The keys of `role` at `path`: a key directory (its `<role>.key`) or a key file of that
    /// role. A status client also accepts a worker file (a worker may ask for status). Refuses
    /// a file other users can read, naming it and the fix.
    public static func load(_ path: String, role: Role) throws -> JobKeys {
        var isDirectory = false
        var st = stat()
        if stat(path, &st) == 0 { isDirectory = (st.st_mode & S_IFMT) == S_IFDIR }
        else { throw ControlKeyError("\(path): cannot read keys: \(Files.errnoText()) (make them with `proclip keys new DIR`; `launch` writes them to RUN/keys)") }
        let file = isDirectory ? "\(path)/\(role.fileName)" : path
        guard stat(file, &st) == 0 else { throw ControlKeyError("\(file): cannot read \(role) keys: \(Files.errnoText())") }
        guard st.st_mode & 0o077 == 0 else {
            throw ControlKeyError("\(file): other users can read these keys (mode \(String(st.st_mode & 0o777, radix: 8))): run `chmod 600 \(file)`")
        }
        let keys = try parse(String(decoding: try Files.read(file), as: UTF8.self), file: file)
        let accepted: [Role] = role == .status ? [.status, .worker] : [role]
        guard accepted.contains(keys.role) else {
            throw ControlKeyError("\(file): holds \(keys.role) keys; this process needs \(role) keys (\(role.fileName))")
        }
        return keys
    }

    /// Parses a key file's text; errors name `file` and the line.
    static func parse(_ text: String, file: String) throws -> JobKeys {
        var fields: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // Z85 uses `#` and `=`: comments are whole lines, the name ends at the first `=`.
            let line = Substring(raw)
            if line.allSatisfy(\.isWhitespace) || line.drop(while: \.isWhitespace).hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else { throw ControlKeyError("\(file):\(n + 1): expected `name = value`") }
            let name = trimmed(line[..<eq]), value = trimmed(line[line.index(after: eq)...])
            guard fields[name] == nil else { throw ControlKeyError("\(file):\(n + 1): \(name) given twice") }
            fields[name] = value
        }
        func key(_ name: String) throws -> String {
            guard let v = fields[name] else { throw ControlKeyError("\(file): no `\(name)` line") }
            guard CurveKeyPair.decode(v) != nil else { throw ControlKeyError("\(file): \(name) is not a 40-character Z85 key") }
            return v
        }
        guard let roleText = fields["role"], let role = Role(rawValue: roleText) else {
            throw ControlKeyError("\(file): `role` must be coordinator, worker or status")
        }
        let secret = try key("secret"), pub = try key("public")
        guard CurveKeyPair.publicKey(ofSecret: secret) == pub else { throw ControlKeyError("\(file): public does not belong to secret") }
        let pair = CurveKeyPair(publicKey: pub, secretKey: secret)
        switch role {
        case .coordinator:
            return JobKeys(role: role, pair: pair, coordinatorPublic: pub, workerPublic: try key("worker-public"), statusPublic: try key("status-public"))
        case .worker, .status:
            return JobKeys(role: role, pair: pair, coordinatorPublic: try key("coordinator-public"), workerPublic: nil, statusPublic: nil)
        }
    }

    private static func trimmed(_ s: Substring) -> String {
        String(s.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    /// The file's text.
    public var fileText: String {
        var lines = ["# proclip \(role) keys. " + JobKeys.purpose[role]!, "# Keep secret: readable by its owner only (chmod 600).", "role = \(role)"]
        switch role {
        case .coordinator:
            lines += ["public = \(pair.publicKey)", "secret = \(pair.secretKey)", "worker-public = \(workerPublic!)", "status-public = \(statusPublic!)"]
        case .worker, .status:
            lines += ["coordinator-public = \(coordinatorPublic)", "public = \(pair.publicKey)", "secret = \(pair.secretKey)"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static let purpose: [Role: String] = [
        .coordinator: "For `proclip coordinator` only.",
        .worker: "Lets its holder join the job as a worker: give it to worker hosts only.",
        .status: "Lets its holder read the job's status, nothing else.",
    ]
}

/// How a process secures its control connections: CURVE with the job's keys, or explicitly not.
public enum ControlSecurity: Sendable, Equatable {
    case curve(JobKeys)
    /// `--insecure`: plain ZeroMQ; anyone who reaches the port can act as a worker.
    case insecure

    /// The keys, when secured.
    public var keys: JobKeys? {
        if case .curve(let k) = self { return k }
        return nil
    }

    /// One word for logs and status: "curve" or "insecure".
    public var name: String { keys == nil ? "insecure" : "curve" }

    /// The line every log of an insecure process carries.
    public static let insecureWarning =
        "INSECURE (--insecure): control plane and ring links are neither authenticated nor encrypted; anyone who reaches their ports can join or disrupt the job"

    /// Makes `socket` a CURVE server authenticated through the context's ZAP handler.
    public func configureServer(_ socket: ZmqSocket) throws {
        guard let k = keys else { return }
        try socket.set(.curveServer(secretKey: k.pair.secretKey))
        try socket.set(.zapDomain(ZapHandler.domain))
    }

    /// Makes `socket` a CURVE client of the coordinator.
    public func configureClient(_ socket: ZmqSocket) throws {
        guard let k = keys else { return }
        try socket.set(.curveClient(serverKey: k.coordinatorPublic, publicKey: k.pair.publicKey, secretKey: k.pair.secretKey))
    }

    /// The coordinator's ZAP handler: admits the worker and status keys under their user ids
    /// (nil when insecure).
    public func coordinatorAuthenticator(context: ZmqContext) throws -> ZapHandler? {
        guard let k = keys, let w = k.workerPublic, let s = k.statusPublic else { return nil }
        return try ZapHandler(context: context, allowed: [w: JobKeys.workerUser, s: JobKeys.statusUser])
    }
}

/// A key file or directory that cannot be used, with what to do.
public struct ControlKeyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
