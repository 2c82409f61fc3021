#if canImport(Glibc)
import Glibc
#endif
import Tensors
import Basics

/// Writes a feature dataset so that nothing partial is ever visible: everything goes into a
/// staging directory `<directory>.tmp-<pid>` (each file fsynced), the manifest last, and `commit()`
/// renames the staging directory to `directory`. Any failure removes the staging directory. Input
/// is checked before a byte is written: shapes, and that every value is finite (after rounding to
/// float16 when the dataset stores float16).
public final class DatasetWriter {
    /// The directory the dataset will have once committed.
    public let directory: String
    /// The manifest so far.
    public private(set) var manifest: Manifest
    let staging: String
    private var committed = false

    /// Starts a dataset at `directory`, which must not exist yet.
    public init(creating directory: String, dtype: NpyDType, dEmbed: Int, dLLM: Int, variants: [String],
                description: String, source: JSONValue? = nil) throws {
        self.directory = directory
        if Files.exists(directory) { throw FileError(directory, "already exists; remove it or choose another directory") }
        guard dtype != .int32 else { throw FileError(directory, "feature dtype must be float32 or float16") }
        manifest = Manifest(description: description, dtype: dtype, dEmbed: dEmbed, dLLM: dLLM, variants: variants, source: source)
        staging = "\(directory).tmp-\(getpid())"
        Tree.remove(staging)
        if let slash = directory.lastIndex(of: "/"), slash != directory.startIndex {
            try Files.makeDirectories(String(directory[..<slash]))
        }
        if mkdir(staging, 0o755) != 0 { throw FileError(staging, "cannot create directory: \(Files.errnoText())") }
    }

    deinit { if !committed { Tree.remove(staging) } }

    /// Writes one shard of `rows` rows:
    /// `image (rows, D_embed)`, `clipText (rows, V, D_embed)`, `llm (rows, V, D_llm)`; optional
    /// `concepts (rows, width)` int32 ids padded with -1; optional `captions`, one JSON object per
    /// row without newlines. Throws a `FileError` naming the shard's file on bad input.
    public func addShard(name: String, split: Split, rows: Int,
                         image: UnsafeBufferPointer<Float>, clipText: UnsafeBufferPointer<Float>,
                         llm: UnsafeBufferPointer<Float>, concepts: (ids: [Int32], width: Int)? = nil,
                         captions: [String]? = nil) throws {
        let m = manifest
        let v = m.variants.count
        let dir = "\(staging)/\(name)"
        let shown = "\(directory)/\(name)"
        if m.shards.contains(where: { $0.name == name }) || name.isEmpty || name.contains("/") || name == "prompts" {
            throw FileError(shown, "shard name '\(name)' is empty, repeated or reserved")
        }
        try check(image, [rows, m.dEmbed], "(n, D_embed)", "\(shown)/image.npy", "image")
        try check(clipText, [rows, v, m.dEmbed], "(n, V, D_embed)", "\(shown)/clip_text.npy", "clip_text")
        try check(llm, [rows, v, m.dLLM], "(n, V, D_llm)", "\(shown)/llm.npy", "llm")
        if let c = concepts, c.width < 1 || c.ids.count != rows * c.width {
            throw FileError("\(shown)/concepts.npy", "array 'concepts': \(c.ids.count) ids for shape [\(rows), \(c.width)]")
        }
        if let caps = captions {
            if caps.count != rows { throw FileError("\(shown)/captions.jsonl", "\(caps.count) captions for \(rows) rows") }
            if let i = caps.firstIndex(where: { $0.contains("\n") }) { throw FileError("\(shown)/captions.jsonl", "line \(i + 1) contains a newline") }
        }
        if mkdir(dir, 0o755) != 0 { throw FileError(dir, "cannot create directory: \(Files.errnoText())") }
        var files: [String: FileEntry] = [:]
        files["image.npy"] = try writeNpy("\(dir)/image.npy", image, [rows, m.dEmbed])
        files["clip_text.npy"] = try writeNpy("\(dir)/clip_text.npy", clipText, [rows, v, m.dEmbed])
        files["llm.npy"] = try writeNpy("\(dir)/llm.npy", llm, [rows, v, m.dLLM])
        if let c = concepts {
            let sink = try FileSink("\(dir)/concepts.npy")
            try sink.write(NpyHeader.encode(dtype: .int32, shape: [rows, c.width]))
            try c.ids.map { $0.littleEndian }.withUnsafeBytes { try sink.write($0) }
            files["concepts.npy"] = try sink.finish()
        }
        if let caps = captions {
            let sink = try FileSink("\(dir)/captions.jsonl")
            for line in caps { try sink.write(Array((line + "\n").utf8)) }
            files["captions.jsonl"] = try sink.finish()
        }
        try Tree.sync(dir)
        manifest.shards.append(ShardEntry(name: name, split: split, rows: rows, files: files))
    }

    /// Writes the zero-shot prompts: `clipText (C, D_embed)`, `llm (C, D_llm)` for C labels.
    public func setPrompts(labels: [String], texts: [String]?, heldOut: [Int],
                           clipText: UnsafeBufferPointer<Float>, llm: UnsafeBufferPointer<Float>) throws {
        let c = labels.count, dir = "\(staging)/prompts", shown = "\(directory)/prompts"
        try check(clipText, [c, manifest.dEmbed], "(C, D_embed)", "\(shown)/clip_text.npy", "clip_text")
        try check(llm, [c, manifest.dLLM], "(C, D_llm)", "\(shown)/llm.npy", "llm")
        if manifest.prompts != nil { throw FileError(shown, "prompts written twice") }
        if mkdir(dir, 0o755) != 0 { throw FileError(dir, "cannot create directory: \(Files.errnoText())") }
        var files: [String: FileEntry] = [:]
        files["clip_text.npy"] = try writeNpy("\(dir)/clip_text.npy", clipText, [c, manifest.dEmbed])
        files["llm.npy"] = try writeNpy("\(dir)/llm.npy", llm, [c, manifest.dLLM])
        try Tree.sync(dir)
        manifest.prompts = PromptsEntry(directory: "prompts", labels: labels, texts: texts, heldOut: heldOut, files: files)
    }

    /// Writes `manifest.json` and renames the staging directory to `directory`.
    @discardableResult
    public func commit() throws -> Manifest {
        try manifest.check(path: "\(directory)/manifest.json")
        let sink = try FileSink("\(staging)/manifest.json")
        try sink.write(manifest.encoded())
        _ = try sink.finish()
        try Tree.sync(staging)
        try Tree.rename(staging, directory)
        committed = true
        return manifest
    }

    /// Writes a whole dataset: `body` adds shards and prompts, then the dataset is committed. On
    /// any error nothing is left at `directory` (nor in its staging directory).
    public static func create(at directory: String, dtype: NpyDType, dEmbed: Int, dLLM: Int, variants: [String],
                              description: String, source: JSONValue? = nil,
                              _ body: (DatasetWriter) throws -> Void) throws -> Manifest {
        let w = try DatasetWriter(creating: directory, dtype: dtype, dEmbed: dEmbed, dLLM: dLLM, variants: variants,
                                  description: description, source: source)
        try body(w)
        return try w.commit()
    }

    private func writeNpy(_ path: String, _ values: UnsafeBufferPointer<Float>, _ shape: [Int]) throws -> FileEntry {
        let sink = try FileSink(path)
        try sink.write(NpyHeader.encode(dtype: manifest.dtype, shape: shape))
        try sink.writeFloats(values, as: manifest.dtype)
        return try sink.finish()
    }

    private func check(_ values: UnsafeBufferPointer<Float>, _ shape: [Int], _ axes: String, _ path: String, _ name: String) throws {
        let want = shape.reduce(1, *)
        if values.count != want {
            throw FileError(path, "array '\(name)': \(values.count) values for shape \(shape) \(axes)")
        }
        let rowWidth = shape.dropFirst().reduce(1, *)
        let f16 = manifest.dtype == .float16
        for i in 0..<values.count {
            let x = values[i]
            if !x.isFinite || (f16 && !Float(Float16(x)).isFinite) {
                throw FileError(path, "array '\(name)': row \(i / max(rowWidth, 1)) holds \(x.isNaN ? "NaN" : x.isFinite ? "a value beyond float16 range" : "Inf"); nothing written")
            }
        }
    }
}
