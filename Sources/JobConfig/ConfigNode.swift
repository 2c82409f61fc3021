import Yams

/// A problem in a job config, naming the file, the key path (e.g. `phases[1].lr.text`), the
/// phase by name when the key is inside one, and what is wrong:
/// `demo.yaml: phases[1].eps (phase 'contrast'): must be greater than 0, got 0`.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The file (or other source) the config was read from.
    public let source: String
    /// The key path; empty for a problem with the whole text.
    public let key: String
    /// What is wrong, and what is allowed.
    public let problem: String
    /// The name of the phase the key belongs to, when it is inside a named phase.
    public var phase: String?

    /// A problem with `key` of the config read from `source`.
    public init(source: String, key: String, problem: String, phase: String? = nil) {
        self.source = source
        self.key = key
        self.problem = problem
        self.phase = phase
    }

    /// One line: source, key (with the phase's name), problem.
    public var description: String {
        if key.isEmpty { return "\(source): \(problem)" }
        return "\(source): \(key)\(phase.map { " (phase '\($0)')" } ?? ""): \(problem)"
    }
}

/// The values a number may take: a test, and the words errors use for it ("greater than 0").
struct Allowed {
    let text: String
    let contains: (Double) -> Bool

    static let nonNegative = Allowed(text: "0 or more") { $0 >= 0 }
    static let positive = Allowed(text: "greater than 0") { $0 > 0 }
    /// [0, 1]: a rate that may be 0 or 1 (the EMA's alpha).
    static let unit = Allowed(text: "in [0, 1]") { $0 >= 0 && $0 <= 1 }
    /// [0, 1): a decay that must stay below 1 (Adam's betas).
    static let belowOne = Allowed(text: "in [0, 1)") { $0 >= 0 && $0 < 1 }
}

/// A YAML node with its key path, for strict reading: every read names the key on failure, and
/// `finish()` refuses keys nobody read (so a typo is an error, not a silently ignored setting).
struct ConfigNode {
    let node: Node
    let path: String
    let source: String
    private var seen: Set<String> = []

    init(_ node: Node, path: String, source: String) {
        self.node = node
        self.path = path
        self.source = source
    }

    func fail(_ problem: String, key: String? = nil) -> ConfigError {
        ConfigError(source: source, key: key.map { child($0) } ?? path, problem: problem)
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    var isMapping: Bool { if case .mapping = node { return true } else { return false } }

    private func raw(_ key: String) throws -> Node? {
        guard case .mapping(let m) = node else { throw fail("expected a mapping of keys") }
        return m[key]
    }

    /// The sub-mapping or value at `key`, or nil when absent (or null).
    mutating func optional(_ key: String) throws -> ConfigNode? {
        seen.insert(key)
        guard let n = try raw(key) else { return nil }
        if case .scalar(let s) = n, s.string == "null" || s.string == "~" || s.string.isEmpty, s.style == .plain { return nil }
        return ConfigNode(n, path: child(key), source: source)
    }

    /// The node at `key`; an error when missing.
    mutating func required(_ key: String) throws -> ConfigNode {
        guard let n = try optional(key) else { throw fail("missing (required)", key: key) }
        return n
    }

    mutating func int(_ key: String, default d: Int? = nil, min lo: Int? = nil) throws -> Int {
        guard let n = try optional(key) else {
            if let d { return d }
            throw fail("missing (required)", key: key)
        }
        return try n.asInt(min: lo)
    }

    mutating func double(_ key: String, default d: Double? = nil, _ allowed: Allowed? = nil) throws -> Double {
        guard let n = try optional(key) else {
            if let d { return d }
            throw fail("missing (required)", key: key)
        }
        return try n.asDouble(allowed)
    }

    mutating func string(_ key: String, default d: String? = nil) throws -> String {
        guard let n = try optional(key) else {
            if let d { return d }
            throw fail("missing (required)", key: key)
        }
        return try n.asString()
    }

    /// The plain scalar at `key` without marking it read, or nil (for naming a phase in errors).
    func peek(_ key: String) -> String? {
        guard case .mapping(let m) = node, let n = m[key], case .scalar(let s) = n else { return nil }
        return s.string
    }

    mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let n = try optional(key) else { return d }
        guard case .scalar(let s) = n.node, let b = Bool(s.string.lowercased()) else { throw n.fail("expected true or false, got \(n.text)") }
        return b
    }

    mutating func strings(_ key: String, default d: [String]? = nil) throws -> [String] {
        guard let n = try optional(key) else {
            if let d { return d }
            throw fail("missing (required)", key: key)
        }
        return try n.items().map { try $0.asString() }
    }

    func items() throws -> [ConfigNode] {
        guard case .sequence(let seq) = node else { throw fail("expected a list, got \(text)") }
        return seq.enumerated().map { ConfigNode($1, path: "\(path)[\($0)]", source: source) }
    }

    /// The keys of a mapping, in file order.
    func keys() throws -> [String] {
        guard case .mapping(let m) = node else { throw fail("expected a mapping of keys") }
        return m.keys.compactMap { $0.string }
    }

    /// Refuses keys that were not read.
    func finish() throws {
        for k in try keys() where !seen.contains(k) {
            throw ConfigError(source: source, key: child(k), problem: "unknown key")
        }
    }

    var text: String {
        switch node {
        case .scalar(let s): return "\"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    func asInt(min lo: Int? = nil) throws -> Int {
        guard case .scalar(let s) = node, let v = Int(s.string.replacingOccurrences(of: "_", with: "")) else {
            throw fail("expected an integer, got \(text)")
        }
        if let lo, v < lo { throw fail("must be at least \(lo), got \(v)") }
        return v
    }

    /// A finite number (NaN and infinities are refused), within `allowed` when given. YAML's `.nan` and `.inf` are numbers too, so they get the same error as `nan` and `1e999`.
    func asDouble(_ allowed: Allowed? = nil) throws -> Double {
        guard case .scalar(let s) = node else { throw fail("expected a number, got \(text)") }
        let digits = s.string.replacingOccurrences(of: "_", with: "")
        let yamlNonFinite = [".nan", ".inf", "+.inf", "-.inf"].contains(digits.lowercased())
        guard let v = yamlNonFinite ? Double.nan : Double(digits) else { throw fail("expected a number, got \(text)") }
        if !v.isFinite { throw fail("expected a finite number, got \(text)") }
        if let allowed, !allowed.contains(v) { throw fail("must be \(allowed.text), got \(s.string)") }
        return v
    }

    func asString() throws -> String {
        guard case .scalar(let s) = node else { throw fail("expected a string, got \(text)") }
        return s.string
    }
}
