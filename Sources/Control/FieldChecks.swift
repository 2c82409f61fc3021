/// The checks `validated()` runs, each throwing a `ControlError` that names the message and field.
struct Fields {
    let message: String

    init(_ message: String) { self.message = message }

    func fail(_ field: String, _ problem: String) -> ControlError { ControlError(message, field, problem) }

    func require(_ ok: Bool, _ field: String, _ problem: @autoclosure () -> String) throws {
        if !ok { throw fail(field, problem()) }
    }

    /// `value` in `range` ("Assignment.world 0 outside 1...4096").
    func range<T: Comparable>(_ field: String, _ value: T, _ range: ClosedRange<T>) throws {
        try require(range.contains(value), field, "\(value) outside \(range)")
    }

    /// `value` in `range` ("Assignment.rank 5 outside 0..<4").
    func range(_ field: String, _ value: Int, _ range: Range<Int>) throws {
        try require(range.contains(value), field, "\(value) outside \(range)")
    }

    /// A global step: 0…`ControlLimits.maxStep`.
    func step(_ field: String, _ value: Int) throws { try range(field, value, 0...ControlLimits.maxStep) }

    /// An identifier the coordinator handed out (from 1).
    func id(_ field: String, _ value: UInt64) throws { try require(value >= 1, field, "\(value) is not a worker id (ids start at 1)") }

    /// A generation that has been formed (from 1).
    func generation(_ field: String, _ value: UInt64) throws { try require(value >= 1, field, "\(value) is not a formed generation (they start at 1)") }

    /// A finite number, and ≥ 0 unless `signed`, and at most `max`.
    func number(_ field: String, _ value: Double, signed: Bool = false, max: Double = .greatestFiniteMagnitude) throws {
        try require(value.isFinite, field, "\(value) is not finite")
        if !signed { try require(value >= 0, field, "\(value) is negative") }
        try require(value <= max, field, "\(value) exceeds \(max)")
    }

    /// A string of at most `max` UTF-8 bytes, non-empty unless `empty`.
    func text(_ field: String, _ value: String, max: Int, empty: Bool = false) throws {
        let n = value.utf8.count
        try require(n <= max, field, "is \(n) bytes (at most \(max))")
        if !empty { try require(n > 0, field, "is empty") }
    }

    /// A name written into files and logs: non-empty, bounded, no control characters.
    func name(_ field: String, _ value: String, max: Int = ControlLimits.maxName) throws {
        try text(field, value, max: max)
        try require(!value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, field, "holds a control character")
    }

    /// A ZeroMQ endpoint a peer can connect to: tcp://… or ipc://…, bounded, no control characters.
    func endpoint(_ field: String, _ value: String) throws {
        try name(field, value, max: ControlLimits.maxEndpoint)
        let rest = value.hasPrefix("tcp://") || value.hasPrefix("ipc://") ? value.dropFirst(6) : nil
        try require(rest.map { !$0.isEmpty } ?? false, field, "'\(value.prefix(64))' is not a tcp:// or ipc:// endpoint")
    }

    /// An absolute path, bounded, no control characters (empty allowed when `empty`).
    func path(_ field: String, _ value: String, empty: Bool = false) throws {
        if empty && value.isEmpty { return }
        try name(field, value, max: ControlLimits.maxPath)
        try require(value.hasPrefix("/"), field, "'\(value.prefix(64))' is not an absolute path")
    }

    /// Named metric terms (losses, learning rates): at most `ControlLimits.maxTerms` of them, each
    /// name bounded and each value finite (and ≥ 0 unless `signed`).
    func terms(_ field: String, _ value: [String: Double], signed: Bool) throws {
        try require(value.count <= ControlLimits.maxTerms, field, "has \(value.count) entries (at most \(ControlLimits.maxTerms))")
        for (k, v) in value {
            try name(field + " key", k)
            try number(field + "[\(k.prefix(64))]", v, signed: signed)
        }
    }

    /// A list of at most `max` entries.
    func count(_ field: String, _ n: Int, max: Int) throws {
        try require(n <= max, field, "has \(n) entries (at most \(max))")
    }
}

extension Fields {
    /// A nested message, its errors named from this one ("Assignment.checkpoint.every …").
    func nested<T: ControlPayload>(_ field: String, _ value: T) throws {
        do {
            _ = try value.validated()
        } catch let e as ControlError {
            throw ControlError(message, field + (e.field.map { "." + $0 } ?? ""), e.problem)
        }
    }
}
