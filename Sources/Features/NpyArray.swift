#if canImport(Glibc)
import Glibc
#endif
import Tensors
import Basics

#if _endian(big)
#error("proclip reads little-endian .npy data in place; big-endian hosts are not supported")
#endif

/// A `.npy` file mapped read-only, its header validated and its size checked exactly against the
/// header (a truncated file or trailing bytes are refused). Rows are read in place from the map.
///
/// `@unchecked Sendable` (for the raw `data` pointer): immutable after `init`, over a read-only map.
public final class NpyArray: @unchecked Sendable {
    /// The file, for errors.
    public var path: String { file.path }
    /// The parsed header.
    public let header: NpyHeader
    /// The mapped file (kept alive while the array is).
    let file: MappedFile
    /// First data byte.
    let data: UnsafeRawPointer

    /// Maps and validates `path`. Errors name the file and the problem in one line.
    public init(path: String) throws {
        file = try MappedFile(path: path)
        header = try NpyHeader.parse(file.bytes, path: path)
        let need = header.dataOffset + header.dataBytes
        if file.bytes.count < need {
            throw FileError(path, "truncated: shape \(header.shape) \(header.dtype) needs \(need) bytes, file has \(file.bytes.count)")
        }
        if file.bytes.count > need {
            throw FileError(path, "\(file.bytes.count - need) trailing bytes after the data of shape \(header.shape)")
        }
        let offset = header.dataOffset
        // An empty file cannot hold a header, so the map has a base address here.
        data = UnsafeRawPointer(file.bytes.baseAddress!) + offset
    }

    /// Copies `count` elements starting at element `offset` into `dst` as float32 (float16 is
    /// widened exactly). The caller keeps `offset + count` within the array.
    @inline(__always)
    public func copyFloats(from offset: Int, count: Int, to dst: UnsafeMutablePointer<Float>) {
        copyRow(data, header.dtype, offset, count, dst)
    }

    /// Element `offset` as float32.
    @inline(__always)
    public func float(at offset: Int) -> Float {
        var x: Float = 0
        copyFloats(from: offset, count: 1, to: &x)
        return x
    }

    /// Element `offset` of an int32 array.
    public func int32(at offset: Int) -> Int32 {
        precondition(header.dtype == .int32)
        return data.loadUnaligned(fromByteOffset: 4 * offset, as: Int32.self)
    }

    /// Checks that the array has `dtype` (when given) and `shape`; `name` is the array's name in
    /// errors, e.g. `llm`; `shapeText` names the axes, e.g. `(n, V, D_llm)`. Throws
    /// "PATH: array 'llm': expected shape [8, 3, 64] (n, V, D_llm), got [8, 2, 64]".
    public func expect(name: String, dtype: NpyDType?, shape: [Int], shapeText: String) throws {
        if let dtype, header.dtype != dtype {
            throw FileError(path, "array '\(name)': expected \(dtype) ('\(dtype.descr)'), got \(header.dtype) ('\(header.dtype.descr)')")
        }
        if header.shape != shape {
            throw FileError(path, "array '\(name)': expected shape \(shape) \(shapeText), got \(header.shape)")
        }
    }
}
