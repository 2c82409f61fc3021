import Basics
import Tensors

/// Element types proclip accepts in `.npy` files: little-endian only.
public enum NpyDType: String, Sendable, Codable, CaseIterable {
    case float32, float16, int32

    /// NumPy's type string, e.g. `<f4`.
    public var descr: String {
        switch self {
        case .float32: return "<f4"
        case .float16: return "<f2"
        case .int32: return "<i4"
        }
    }

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32, .int32: return 4
        case .float16: return 2
        }
    }

    /// The type for a NumPy type string, or nil when proclip does not read it.
    public init?(descr: String) {
        switch descr {
        case "<f4": self = .float32
        case "<f2": self = .float16
        case "<i4": self = .int32
        default: return nil
        }
    }
}

/// The header of a NumPy `.npy` file (format versions 1.0, 2.0 and 3.0):
/// magic `\x93NUMPY`, two version bytes, the header length (2 bytes little-endian for v1, 4 for
/// v2/v3), then a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`
/// padded with spaces to a multiple of 64 bytes and ended by `\n`. The data follows in C order.
public struct NpyHeader: Sendable, Equatable {
    /// Element type.
    public var dtype: NpyDType
    /// Array shape, outermost first.
    public var shape: [Int]
    /// Byte offset of the first element (the header's total length).
    public var dataOffset: Int

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Bytes of the data section.
    public var dataBytes: Int { count * dtype.size }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// Parses the header at the start of `bytes`; `path` names the file in errors.
    public static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> NpyHeader {
        guard bytes.count >= 10, (0..<6).allSatisfy({ bytes[$0] == magic[$0] }) else {
            throw FileError(path, "not a .npy file: missing the \\x93NUMPY magic (\(bytes.count) bytes)")
        }
        let major = bytes[6]
        let headerLength: Int
        let start: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw FileError(path, "truncated .npy header (\(bytes.count) bytes)") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            start = 12
        default:
            throw FileError(path, "unsupported .npy format version \(major).\(bytes[7])")
        }
        guard headerLength <= 1 << 20 else { throw FileError(path, ".npy header length \(headerLength) is implausible") }
        guard start + headerLength <= bytes.count else {
            throw FileError(path, "truncated .npy header: needs \(start + headerLength) bytes, file has \(bytes.count)")
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + headerLength)]), as: UTF8.self)
        var dict: [String: PyValue]
        do {
            var parser = PyLiteralParser(text)
            dict = try parser.parseDict()
        } catch let error as PyLiteralParser.Failure {
            throw FileError(path, ".npy header is not a valid dict literal: \(error.reason)")
        }
        guard case .string(let descr)? = dict.removeValue(forKey: "descr") else {
            throw FileError(path, ".npy header has no string 'descr' (structured dtypes are not supported)")
        }
        guard let dtype = NpyDType(descr: descr) else {
            throw FileError(path, "dtype '\(descr)': expected little-endian float32 '<f4' or float16 '<f2'")
        }
        guard case .bool(let fortran)? = dict.removeValue(forKey: "fortran_order") else {
            throw FileError(path, ".npy header has no boolean 'fortran_order'")
        }
        if fortran { throw FileError(path, "array is in Fortran order; proclip reads C order only") }
        guard case .ints(let shape)? = dict.removeValue(forKey: "shape") else {
            throw FileError(path, ".npy header has no integer tuple 'shape'")
        }
        if shape.contains(where: { $0 < 0 }) { throw FileError(path, "negative dimension in shape \(shape)") }
        var total = dtype.size
        for d in shape {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            if overflow { throw FileError(path, "shape \(shape) is too large") }
            total = p
        }
        return NpyHeader(dtype: dtype, shape: shape, dataOffset: start + headerLength)
    }

    /// The header bytes NumPy itself would write for this dtype and shape: version 1.0 when the
    /// dict fits in 65535 bytes (else 2.0), padded so the data starts at a multiple of 64.
    public static func encode(dtype: NpyDType, shape: [Int]) -> [UInt8] {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = Array("{'descr': '\(dtype.descr)', 'fortran_order': False, 'shape': \(dims), }".utf8)
        var prefix = 10
        if (prefix + dict.count + 1 + 63) / 64 * 64 - prefix > 65535 { prefix = 12 }
        let total = (prefix + dict.count + 1 + 63) / 64 * 64
        dict += [UInt8](repeating: 0x20, count: total - prefix - dict.count - 1) + [0x0A]
        var out = magic
        if prefix == 10 {
            out += [1, 0, UInt8(dict.count & 0xFF), UInt8(dict.count >> 8)]
        } else {
            out += [2, 0] + (0..<4).map { UInt8((dict.count >> (8 * $0)) & 0xFF) }
        }
        return out + dict
    }
}

/// A value in a `.npy` header dict.
enum PyValue: Equatable {
    case string(String), bool(Bool), ints([Int]), other
}

/// Parses the small Python literal subset `.npy` headers use: a dict of quoted keys to strings,
/// `True`/`False`, integer tuples; anything else is kept as `.other` (so it can be refused by key).
struct PyLiteralParser {
    struct Failure: Error { let reason: String }
    private let chars: [Character]
    private var i = 0

    init(_ text: String) { chars = Array(text) }

    mutating func parseDict() throws -> [String: PyValue] {
        skipSpace()
        try expect("{")
        var out: [String: PyValue] = [:]
        while true {
            skipSpace()
            if peek == "}" { i += 1; break }
            guard case .string(let key) = try parseValue() else { throw Failure(reason: "dict key is not a string") }
            skipSpace()
            try expect(":")
            out[key] = try parseValue()
            skipSpace()
            if peek == "," { i += 1; continue }
            try expect("}")
            break
        }
        return out
    }

    private var peek: Character? { i < chars.count ? chars[i] : nil }

    private mutating func skipSpace() { while let c = peek, c.isWhitespace { i += 1 } }

    private mutating func expect(_ c: Character) throws {
        guard peek == c else { throw Failure(reason: "expected '\(c)' at character \(i)") }
        i += 1
    }

    private mutating func parseValue() throws -> PyValue {
        skipSpace()
        guard let c = peek else { throw Failure(reason: "unexpected end") }
        switch c {
        case "'", "\"":
            i += 1
            var s = ""
            while let d = peek, d != c { s.append(d); i += 1 }
            try expect(c)
            return .string(s)
        case "(":
            i += 1
            var ints: [Int] = []
            while true {
                skipSpace()
                if peek == ")" { i += 1; break }
                var digits = ""
                while let d = peek, d.isNumber || d == "-" { digits.append(d); i += 1 }
                if peek == "L" { i += 1 }  // Python 2 long suffix
                guard let v = Int(digits) else { throw Failure(reason: "shape entry is not an integer") }
                ints.append(v)
                skipSpace()
                if peek == "," { i += 1 }
            }
            return .ints(ints)
        default:
            var word = ""
            var depth = 0
            while let d = peek, depth > 0 || (d != "," && d != "}") {
                if d == "[" || d == "(" { depth += 1 }
                if d == "]" || d == ")" { depth -= 1 }
                word.append(d)
                i += 1
            }
            let w = word.filter { !$0.isWhitespace }
            if w == "True" { return .bool(true) }
            if w == "False" { return .bool(false) }
            return .other
        }
    }
}
