import Basics
import FoundationEssentials

/// Element types of a safetensors file that proclip reads or writes.
public enum DType: String, Sendable, Codable {
    case f32 = "F32", f16 = "F16", f64 = "F64", i32 = "I32", i64 = "I64", u8 = "U8"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16: return 2
        case .f64, .i64: return 8
        case .u8: return 1
        }
    }
}

/// Where one tensor sits in a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range within the data section (after the header).
    public let range: Range<Int>

    /// Number of elements (1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
}

/// A parsed safetensors file: 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian tensor bytes.
///
/// Parsing checks everything a hostile or truncated file could get wrong: the header length, the
/// JSON, every dtype, that each shape matches its byte range, that ranges stay inside the file
/// and do not overlap. Errors name the file and the tensor.
public struct SafeTensors: Sendable {
    /// Where the bytes came from, for error messages.
    public let source: String
    /// The `__metadata__` string map (empty when absent).
    public let metadata: [String: String]
    /// Tensors by name.
    public let tensors: [String: TensorInfo]
    private let bytes: [UInt8]
    private let dataStart: Int

    /// The largest header accepted (the format's own limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Reads and validates the file at `path`.
    public init(path: String) throws {
        try self.init(bytes: Files.read(path), source: path)
    }

    /// Validates `bytes` as a safetensors file; `source` names it in errors.
    public init(bytes: [UInt8], source: String) throws {
        self.source = source
        guard bytes.count >= 8 else { throw FileError(source, "not a safetensors file: \(bytes.count) bytes, need at least 8") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(SafeTensors.maxHeaderBytes), Int(n) <= bytes.count - 8 else {
            throw FileError(source, "not a safetensors file: header length \(n) exceeds the file (\(bytes.count) bytes)")
        }
        let parsed = try SafeTensors.parseHeader(bytes[8..<(8 + Int(n))], dataBytes: bytes.count - 8 - Int(n), source: source)
        dataStart = 8 + Int(n)
        metadata = parsed.metadata
        tensors = parsed.tensors
        self.bytes = bytes
    }

    /// The tensor called `name`, or an error naming it.
    public func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw FileError(source, "tensor '\(name)' is missing") }
        return t
    }

    /// The float32 tensor `name` with the expected shape (`nil` entries match any size).
    /// Refuses other dtypes, other shapes and non-finite values.
    public func floats(_ name: String, shape expected: [Int?]? = nil, allowNonFinite: Bool = false) throws -> [Float] {
        let t = try info(name)
        guard t.dtype == .f32 else { throw FileError(source, "tensor '\(name)': expected dtype F32, got \(t.dtype.rawValue)") }
        try check(t, expected)
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(dataStart + t.range.lowerBound)..<(dataStart + t.range.upperBound)]))
            }
        }
        #if _endian(big)
        for i in out.indices { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        #endif
        if !allowNonFinite, let bad = out.firstIndex(where: { !$0.isFinite }) {
            throw FileError(source, "tensor '\(name)': non-finite value \(out[bad]) at index \(SafeTensors.index(bad, in: t.shape))")
        }
        return out
    }

    /// The int32 tensor `name` with the expected shape.
    public func int32s(_ name: String, shape expected: [Int?]? = nil) throws -> [Int32] {
        let t = try info(name)
        guard t.dtype == .i32 else { throw FileError(source, "tensor '\(name)': expected dtype I32, got \(t.dtype.rawValue)") }
        try check(t, expected)
        var out = [Int32](repeating: 0, count: t.count)
        out.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(dataStart + t.range.lowerBound)..<(dataStart + t.range.upperBound)]))
            }
        }
        return out.map { Int32(littleEndian: $0) }
    }

    /// The raw little-endian bytes of tensor `name`.
    public func rawBytes(_ name: String) throws -> ArraySlice<UInt8> {
        let t = try info(name)
        return bytes[(dataStart + t.range.lowerBound)..<(dataStart + t.range.upperBound)]
    }

    private func check(_ t: TensorInfo, _ expected: [Int?]?) throws {
        guard let expected else { return }
        let ok = expected.count == t.shape.count && zip(expected, t.shape).allSatisfy { $0 == nil || $0 == $1 }
        if !ok {
            let want = "[" + expected.map { $0.map(String.init) ?? "*" }.joined(separator: ", ") + "]"
            throw FileError(source, "tensor '\(t.name)': expected shape \(want), got \(t.shape)")
        }
    }

    /// The multi-index `[i, j, …]` of flat index `flat` in a C-order tensor of `shape`.
    static func index(_ flat: Int, in shape: [Int]) -> String {
        var rest = flat
        var idx = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            idx[d] = rest % shape[d]
            rest /= shape[d]
        }
        return "[" + idx.map(String.init).joined(separator: ", ") + "]"
    }

    /// Parses and validates the JSON header of a safetensors file whose data section (the bytes
    /// after the header) is `dataBytes` long: every dtype, that each shape matches its byte
    /// range, that ranges stay inside the data section and do not overlap. For readers that
    /// stream the data section instead of holding the whole file.
    public static func parseHeader<C: Collection>(_ json: C, dataBytes: Int, source: String) throws
        -> (metadata: [String: String], tensors: [String: TensorInfo]) where C.Element == UInt8 {
        let header: [String: HeaderEntry]
        do {
            header = try JSONDecoder().decode([String: HeaderEntry].self, from: Data(json))
        } catch {
            throw FileError(source, "safetensors header is not valid JSON: \(SafeTensors.shortReason(error))")
        }
        var meta: [String: String] = [:]
        var infos: [String: TensorInfo] = [:]
        for (name, entry) in header {
            switch entry {
            case .metadata(let m):
                guard name == "__metadata__" else { throw FileError(source, "tensor '\(name)': missing dtype, shape or data_offsets") }
                meta = m
            case .tensor(let dtypeName, let shape, let offsets):
                guard name != "__metadata__" else { throw FileError(source, "__metadata__ must map strings to strings") }
                guard let dtype = DType(rawValue: dtypeName) else {
                    throw FileError(source, "tensor '\(name)': unsupported dtype \(dtypeName)")
                }
                guard shape.allSatisfy({ $0 >= 0 }), offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
                    throw FileError(source, "tensor '\(name)': bad shape \(shape) or data_offsets \(offsets)")
                }
                var elements = 1
                for d in shape {
                    let (p, o) = elements.multipliedReportingOverflow(by: d)
                    guard !o, p <= dataBytes else { throw FileError(source, "tensor '\(name)': shape \(shape) is larger than the file") }
                    elements = p
                }
                guard offsets[1] <= dataBytes else {
                    throw FileError(source, "tensor '\(name)': data_offsets \(offsets) run past the end of the file (\(dataBytes) data bytes; truncated?)")
                }
                guard offsets[1] - offsets[0] == elements * dtype.size else {
                    throw FileError(source, "tensor '\(name)': shape \(shape) of \(dtypeName) needs \(elements * dtype.size) bytes, data_offsets give \(offsets[1] - offsets[0])")
                }
                infos[name] = TensorInfo(name: name, dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
            }
        }
        let sorted = infos.values.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.range.lowerBound < a.range.upperBound {
            throw FileError(source, "tensors '\(a.name)' and '\(b.name)' overlap")
        }
        return (meta, infos)
    }

    static func shortReason(_ error: Error) -> String {
        let text = "\(error)"
        return String(text.prefix(200).map { $0 == "\n" ? " " : $0 })
    }
}

/// One entry of the JSON header: a tensor description or the metadata map.
private enum HeaderEntry: Decodable {
    case tensor(dtype: String, shape: [Int], offsets: [Int])
    case metadata([String: String])

    private enum Keys: String, CodingKey { case dtype, shape, data_offsets }

    init(from decoder: Decoder) throws {
        if let c = try? decoder.container(keyedBy: Keys.self), c.contains(.dtype) {
            self = .tensor(
                dtype: try c.decode(String.self, forKey: .dtype),
                shape: try c.decode([Int].self, forKey: .shape),
                offsets: try c.decode([Int].self, forKey: .data_offsets))
        } else {
            self = .metadata(try decoder.singleValueContainer().decode([String: String].self))
        }
    }
}

/// Builds a safetensors file in memory: tensors in the order added, 8-byte aligned data.
public struct SafeTensorsWriter {
    private var entries: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
    /// The `__metadata__` string map.
    public var metadata: [String: String] = [:]

    public init() {}

    /// Adds a float32 tensor (`values.count` must equal the product of `shape`).
    public mutating func add(_ name: String, shape: [Int], floats values: UnsafeBufferPointer<Float>) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not match \(values.count) values for \(name)")
        var raw = [UInt8](repeating: 0, count: values.count * 4)
        raw.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        entries.append((name, .f32, shape, raw))
    }

    /// Adds a float32 tensor from an array.
    public mutating func add(_ name: String, shape: [Int], floats values: [Float]) {
        values.withUnsafeBufferPointer { add(name, shape: shape, floats: $0) }
    }

    /// Adds an int32 tensor.
    public mutating func add(_ name: String, shape: [Int], int32s values: [Int32]) {
        precondition(shape.reduce(1, *) == values.count)
        var raw = [UInt8](repeating: 0, count: values.count * 4)
        raw.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.littleEndian, toByteOffset: 4 * i, as: Int32.self) }
        }
        entries.append((name, .i32, shape, raw))
    }

    /// Adds a tensor from raw little-endian bytes.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(shape.reduce(1, *) * dtype.size == bytes.count)
        entries.append((name, dtype, shape, bytes))
    }

    /// The whole file.
    public func serialize() -> [UInt8] {
        var out = SafeTensorsWriter.header(entries.map { ($0.name, $0.dtype, $0.shape) }, metadata: metadata)
        out.reserveCapacity(out.count + entries.reduce(0) { $0 + $1.bytes.count })
        for e in entries { out += e.bytes }
        return out
    }

    /// Everything before the data section — the 8-byte little-endian header length and the JSON
    /// header padded with spaces to a multiple of 8 — for tensors stored contiguously in the
    /// given order. Writers that stream the data section call this, then write the tensors.
    public static func header(_ tensors: [(name: String, dtype: DType, shape: [Int])], metadata: [String: String]) -> [UInt8] {
        var json = "{"
        var offset = 0
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        for t in tensors {
            if !first { json += "," }
            first = false
            let bytes = t.shape.reduce(1, *) * t.dtype.size
            let shape = t.shape.map(String.init).joined(separator: ",")
            json += "\(jsonString(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        json += "}"
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + header.count)
        var n = UInt64(header.count)
        for _ in 0..<8 { out.append(UInt8(n & 0xFF)); n >>= 8 }
        return out + header
    }

    /// Writes the file atomically (temporary name, fsync, rename).
    public func write(to path: String) throws {
        try Files.writeAtomically(path, serialize())
    }
}

/// A JSON string literal for `s`.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}
