import Basics
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// What a checkpoint file holds, read from its header.
public struct CheckpointHeader: Sendable, Equatable {
    /// The file.
    public let path: String
    /// Training position and identity.
    public let meta: CheckpointMeta
    /// The model's sizes (the layout is `ParameterLayout(model)`).
    public let model: ModelShape
    /// Whether float tensors are stored byte-shuffled (as `U8 [4, …]` planes).
    public let byteShuffle: Bool
    /// UTC creation time, ISO 8601.
    public let created: String
    /// proclip release that wrote the file.
    public let producer: String
    /// Every tensor, in the plan's order.
    public let tensors: [CheckpointTensorInfo]
    /// Bytes of the safetensors payload (what `lz4 -d` prints).
    public let contentBytes: Int
    /// Bytes of the compressed file.
    public let fileBytes: Int
}

/// A checkpoint opened for reading: the frame decoder positioned at the data section, the
/// validated header, and the plan matched against it.
struct CheckpointReader {
    let frame: LZ4FrameReader
    let header: CheckpointHeader
    let plan: CheckpointPlan
    /// Planned tensors in the file's byte order, with their byte ranges.
    let order: [(PlannedTensor, Range<Int>)]

    /// Opens `path`, decodes the safetensors header and checks it: structure, metadata, and
    /// every tensor's name, dtype and shape against the layout of the model it names.
    init(path: String) throws {
        let frame = try LZ4FrameReader(path: path)
        self.frame = frame
        guard frame.contentSize >= 8 else { throw FileError(path, "payload of \(frame.contentSize) bytes is too short for safetensors") }
        var lengthBytes = [UInt8](repeating: 0, count: 8)
        try lengthBytes.withUnsafeMutableBytes { try frame.read(into: $0.baseAddress!, count: 8) }
        var n = 0
        for i in 0..<8 { n |= Int(lengthBytes[i]) << (8 * i) }
        guard lengthBytes[7] == 0, n <= SafeTensors.maxHeaderBytes, n <= frame.contentSize - 8 else {
            throw FileError(path, "safetensors header length \(n) is impossible for a payload of \(frame.contentSize) bytes")
        }
        var json = [UInt8](repeating: 0, count: n)
        try json.withUnsafeMutableBytes { if n > 0 { try frame.read(into: $0.baseAddress!, count: n) } }
        let dataBytes = frame.contentSize - 8 - n
        let parsed = try SafeTensors.parseHeader(json, dataBytes: dataBytes, source: path)
        let (meta, facts) = try CheckpointFormat.parse(parsed.metadata, source: path)
        plan = CheckpointPlan(ParameterLayout(facts.model))
        order = try plan.match(parsed.tensors, shuffled: facts.byteShuffle, dataBytes: dataBytes, source: path)
        header = CheckpointHeader(path: path, meta: meta, model: facts.model, byteShuffle: facts.byteShuffle,
                                  created: facts.created, producer: facts.producer, tensors: plan.infos(shuffled: facts.byteShuffle),
                                  contentBytes: frame.contentSize, fileBytes: frame.fileBytes)
    }

    /// Decodes every tensor in file order, unshuffling as needed (on `Parallel`'s threads), and
    /// checks that all values are finite; then checks the end of the frame (content checksum,
    /// nothing after it).
    ///
    /// `destination` may give where a tensor's floats go (e.g. a `ParameterStore` slab); otherwise
    /// they land in a scratch buffer. `visit` sees each tensor's finished floats.
    func decode(into destination: ((PlannedTensor) -> UnsafeMutablePointer<Float>?)? = nil,
                visit: (PlannedTensor, UnsafePointer<Float>) throws -> Void = { _, _ in }) throws {
        let shuffled = header.byteShuffle
        let needScratch = destination == nil || shuffled
        let scratch = needScratch ? UnsafeMutableRawPointer.allocate(byteCount: max(4 * plan.largest, 64), alignment: 64) : nil
        let spare = destination == nil && shuffled ? UnsafeMutablePointer<Float>.allocate(capacity: max(plan.largest, 16)) : nil
        defer {
            scratch?.deallocate()
            spare?.deallocate()
        }
        for (t, _) in order {
            let dst = destination?(t) ?? spare ?? scratch!.assumingMemoryBound(to: Float.self)
            if shuffled {
                try frame.read(into: scratch!, count: 4 * t.count)
                ByteShuffle.unshuffleParallel(scratch!, UnsafeMutableRawPointer(dst), count: t.count)
            } else {
                try frame.read(into: UnsafeMutableRawPointer(dst), count: 4 * t.count)
            }
            #if _endian(big)
            for i in 0..<t.count { dst[i] = Float(bitPattern: UInt32(littleEndian: dst[i].bitPattern)) }
            #endif
            if let bad = firstNonFinite(dst, t.count) {
                throw FileError(frame.path, "tensor '\(t.name)': non-finite value \(dst[bad]) at index \(index(bad, in: t.shape))")
            }
            try visit(t, dst)
        }
        try frame.finish()
    }
}

/// Reading checkpoint files: header only, full verification, loading into a `ParameterStore`.
public enum CheckpointFile {
    /// Decodes and checks only the header (metadata and tensor table), without the tensor data.
    public static func readHeader(_ path: String) throws -> CheckpointHeader {
        try CheckpointReader(path: path).header
    }

    /// Full integrity check: the LZ4 frame (every block checksum, the content checksum and size,
    /// nothing trailing), the safetensors structure, the metadata, every tensor's name, dtype and
    /// shape against the model's layout, and that every value is finite.
    @discardableResult
    public static func verify(_ path: String) throws -> CheckpointHeader {
        let r = try CheckpointReader(path: path)
        try r.decode()
        return r.header
    }

    /// Loads parameters, EMA teacher and both Adam moments into `store`, verifying everything as
    /// `verify` does. Refuses a file of another model shape. On an error the store's contents are
    /// unspecified (some tensors may be loaded): load another checkpoint or reinitialise. Uses
    /// `Parallel`'s threads: call it from the thread that drives training.
    @discardableResult
    public static func load(_ path: String, into store: ParameterStore) throws -> CheckpointHeader {
        let r = try CheckpointReader(path: path)
        if r.header.model != store.layout.shape {
            let mine = CheckpointFormat.modelJSON(store.layout.shape)
            throw FileError(path, "metadata 'model': the file holds \(CheckpointFormat.modelJSON(r.header.model)), this job's model is \(mine)")
        }
        try r.decode(into: { store.pointer($0) })
        return r.header
    }
}

/// Index of the first NaN or infinity among `n` floats, if any. A block-wise test of the
/// exponent bits that vectorises; the exact index is searched only after a hit.
func firstNonFinite(_ p: UnsafePointer<Float>, _ n: Int) -> Int? {
    let bits = UnsafeRawPointer(p).assumingMemoryBound(to: UInt32.self)
    var start = 0
    while start < n {
        let end = min(start + 4096, n)
        var hit: UInt32 = 0
        for i in start..<end { hit |= (bits[i] & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
        if hit != 0 { return (start..<end).first { !p[$0].isFinite } }
        start = end
    }
    return nil
}

/// The multi-index `[i, j, …]` of flat index `flat` in a C-order tensor of `shape`.
func index(_ flat: Int, in shape: [Int]) -> String {
    var rest = flat
    var idx = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
        idx[d] = rest % shape[d]
        rest /= shape[d]
    }
    return "[" + idx.map(String.init).joined(separator: ", ") + "]"
}
