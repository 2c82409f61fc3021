import Tensors

/// A JSON document as a tree, for mutating valid encodings field by field: parses what
/// `JSONEncoder` writes (no extensions) and renders it back with one node replaced by raw text.
indirect enum JSONTree {
    case object([(String, JSONTree)])
    case array([JSONTree])
    case string(String)
    /// The number's text as written.
    case number(String)
    case bool(Bool)
    case null

    /// What kind of JSON value a node (or a raw replacement) is.
    enum Kind { case object, array, string, number, bool, null, invalid }

    var kind: Kind {
        switch self {
        case .object: return .object
        case .array: return .array
        case .string: return .string
        case .number: return .number
        case .bool: return .bool
        case .null: return .null
        }
    }

    /// One step of a path: a member name or an array index.
    enum Step: Hashable, CustomStringConvertible {
        case key(String), index(Int)
        var description: String {
            switch self {
            case .key(let k): return k
            case .index(let i): return "[\(i)]"
            }
        }
    }

    /// Parses `bytes`; nil when they are not JSON of the subset `JSONEncoder` writes.
    static func parse(_ bytes: [UInt8]) -> JSONTree? {
        var p = Parser(bytes: bytes)
        guard let t = p.value() else { return nil }
        p.skipSpace()
        return p.i == bytes.count ? t : nil
    }

    /// Every path in the tree (the root, `[]`, first), with the node there.
    func paths(_ prefix: [Step] = []) -> [([Step], JSONTree)] {
        var out: [([Step], JSONTree)] = [(prefix, self)]
        switch self {
        case .object(let members): for (k, v) in members { out += v.paths(prefix + [.key(k)]) }
        case .array(let items): for (i, v) in items.enumerated() { out += v.paths(prefix + [.index(i)]) }
        default: break
        }
        return out
    }

    /// The node at `path`, if there is one.
    func node(at path: ArraySlice<Step>) -> JSONTree? {
        guard let first = path.first else { return self }
        switch (self, first) {
        case (.object(let members), .key(let k)): return members.first { $0.0 == k }?.1.node(at: path.dropFirst())
        case (.array(let items), .index(let i)): return i < items.count ? items[i].node(at: path.dropFirst()) : nil
        default: return nil
        }
    }

    /// The document's text with the node at `path` replaced by `raw` (any text at all).
    func render(replacing path: [Step]? = nil, with raw: String = "") -> String {
        var out = ""
        write(into: &out, path: path.map { $0[...] }, raw: raw)
        return out
    }

    private func write(into out: inout String, path: ArraySlice<Step>?, raw: String) {
        if let path, path.isEmpty { out += raw; return }
        switch self {
        case .object(let members):
            out += "{"
            for (n, (k, v)) in members.enumerated() {
                if n > 0 { out += "," }
                JSONTree.string(k).write(into: &out, path: nil, raw: "")
                out += ":"
                let sub: ArraySlice<Step>? = path.flatMap { $0.first == .key(k) ? $0.dropFirst() : nil }
                v.write(into: &out, path: sub, raw: raw)
            }
            out += "}"
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                let sub: ArraySlice<Step>? = path.flatMap { $0.first == .index(i) ? $0.dropFirst() : nil }
                v.write(into: &out, path: sub, raw: raw)
            }
            out += "]"
        case .string(let s): out += jsonString(s)
        case .number(let text): out += text
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }

    /// The kind of a raw replacement text (`.invalid` when it is not one JSON value).
    static func kind(ofRaw raw: String) -> Kind { parse(Array(raw.utf8))?.kind ?? .invalid }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
        }

        mutating func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { return false }
            i += w.count
            return true
        }

        mutating func value() -> JSONTree? {
            skipSpace()
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, JSONTree)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard case .string(let k)? = string() else { return nil }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let v = value() else { return nil }
                    members.append((k, v))
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONTree] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let v = value() else { return nil }
                    items.append(v)
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    return nil
                }
            case UInt8(ascii: "\""):
                return string()
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default:
                return number()
            }
        }

        /// JSON's number grammar exactly (no leading zeros, no `+`, no bare `.`).
        mutating func number() -> JSONTree? {
            let start = i
            func digits() -> Int {
                let s = i
                while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
                return i - s
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            guard digits() > 0 else { return nil }
            if bytes[intStart] == UInt8(ascii: "0"), i - intStart > 1 { return nil }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { return nil }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { return nil }
            }
            return .number(String(decoding: bytes[start..<i], as: UTF8.self))
        }

        mutating func string() -> JSONTree? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() {
                scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                raw.removeAll()
            }
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                if b == UInt8(ascii: "\"") { flush(); return .string(String(scalars)) }
                if b < 0x20 { return nil }
                if b != UInt8(ascii: "\\") { raw.append(b); continue }
                guard i < bytes.count else { return nil }
                let e = bytes[i]
                i += 1
                flush()
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16),
                          let u = Unicode.Scalar(v) else { return nil }  // surrogate pairs: not written by JSONEncoder here
                    i += 4
                    scalars.append(u)
                default: return nil
                }
            }
            return nil
        }
    }
}
