import Basics
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

extension CheckpointFile {
    /// What `export` wrote.
    public struct Exported: Sendable {
        /// The checkpoint read.
        public let header: CheckpointHeader
        /// Tensors and bytes (the whole file) written.
        public let tensors: Int
        public let bytes: Int
    }

    /// Writes checkpoint `path` as a plain safetensors file at `out` (float32, never shuffled,
    /// not compressed), verifying the checkpoint on the way: a corrupt one leaves no output.
    ///
    /// With `inferenceOnly`, only the parameters, under their bare PyTorch names
    /// (`text.text_adaptor.0.ln.weight`, `visual.head.0.fn.0.weight`, `logit_scale`) — what
    /// `load_state_dict` takes. Otherwise every tensor under its checkpoint name, with the
    /// checkpoint's metadata (`byte_shuffle` false).
    @discardableResult
    public static func export(_ path: String, to out: String, inferenceOnly: Bool) throws -> Exported {
        let r = try CheckpointReader(path: path)
        let h = r.header
        let chosen = r.order.map(\.0).filter { !inferenceOnly || $0.slab == .params }
        func outName(_ t: PlannedTensor) -> String { inferenceOnly ? String(t.name.dropFirst(SlabKind.params.prefix.count)) : t.name }
        var metadata: [String: String]
        if inferenceOnly {
            metadata = [
                MetaKey.model: CheckpointFormat.modelJSON(h.model), MetaKey.step: String(h.meta.step),
                MetaKey.phaseName: h.meta.phaseName, MetaKey.configHash: h.meta.configHash,
                MetaKey.manifestHash: h.meta.manifestHash, MetaKey.producer: h.producer,
                "source": String(path.split(separator: "/").last ?? ""),
            ]
        } else {
            metadata = CheckpointFormat.metadata(h.meta, FileFacts(model: h.model, byteShuffle: false, created: h.created, producer: h.producer))
        }
        let header = SafeTensorsWriter.header(chosen.map { (outName($0), DType.f32, $0.shape) }, metadata: metadata)
        let keep = Set(chosen.map(\.name))

        let tmp = "\(out).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(tmp, "cannot create: \(Files.errnoText())") }
        var renamed = false
        defer { if !renamed { unlink(tmp) } }
        var bytes = header.count
        do {
            defer { close(fd) }
            try header.withUnsafeBytes { try writeAll(fd, $0, path: tmp) }
            try r.decode(visit: { t, values in
                guard keep.contains(t.name) else { return }
                try writeAll(fd, UnsafeRawBufferPointer(start: values, count: 4 * t.count), path: tmp)
                bytes += 4 * t.count
            })
            if fsync(fd) != 0 { throw FileError(tmp, "fsync failed: \(Files.errnoText())") }
        }
        if rename(tmp, out) != 0 { throw FileError(out, "rename from \(tmp) failed: \(Files.errnoText())") }
        renamed = true
        try syncDirectory(directory(of: out))
        return Exported(header: h, tensors: chosen.count, bytes: bytes)
    }
}
