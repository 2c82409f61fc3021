import Basics
import FoundationEssentials
import Tensors

/// Which part of a dataset a shard belongs to.
public enum Split: String, Sendable, Codable, CaseIterable {
    case train, eval
}

/// Size and checksum of one file of a shard, as the manifest records them.
public struct FileEntry: Sendable, Codable, Equatable {
    /// File size in bytes.
    public var bytes: Int
    /// CRC-32 (zlib's) of the whole file, 8 lowercase hex digits.
    public var crc32: String

    /// An entry for a file of `bytes` bytes with CRC-32 `crc32` (8 hex digits).
    public init(bytes: Int, crc32: String) {
        self.bytes = bytes
        self.crc32 = crc32
    }
}

/// One shard: a directory `<dataset>/<name>/` holding `image.npy (n, D_embed)`,
/// `clip_text.npy (n, V, D_embed)`, `llm.npy (n, V, D_llm)`, optionally `concepts.npy (n, K)` int32
/// (concept ids padded with -1) and `captions.jsonl` (n lines).
public struct ShardEntry: Sendable, Codable, Equatable {
    /// Directory name inside the dataset.
    public var name: String
    /// The split every row of this shard belongs to.
    public var split: Split
    /// Number of rows n.
    public var rows: Int
    /// Every file of the shard by file name.
    public var files: [String: FileEntry]

    /// A shard entry.
    public init(name: String, split: Split, rows: Int, files: [String: FileEntry]) {
        self.name = name
        self.split = split
        self.rows = rows
        self.files = files
    }
}

/// Zero-shot prompts: `<dataset>/<directory>/clip_text.npy (C, D_embed)` and `llm.npy (C, D_llm)`,
/// one prompt per label; `concepts.npy` ids of the shards index `labels`.
public struct PromptsEntry: Sendable, Codable, Equatable {
    /// Directory name inside the dataset.
    public var directory: String
    /// One name per prompt, in row order.
    public var labels: [String]
    /// The prompt text of each label (e.g. "a photo of a dog"), when known.
    public var texts: [String]?
    /// Label indices never named in a training caption (simulation only; empty otherwise).
    public var heldOut: [Int]
    /// Files of the prompts directory.
    public var files: [String: FileEntry]

    /// A prompts entry.
    public init(directory: String, labels: [String], texts: [String]?, heldOut: [Int], files: [String: FileEntry]) {
        self.directory = directory
        self.labels = labels
        self.texts = texts
        self.heldOut = heldOut
        self.files = files
    }

    enum CodingKeys: String, CodingKey {
        case directory, labels, texts, files
        case heldOut = "held_out"
    }
}

/// `manifest.json` of a feature dataset (docs/design.md §4). Example:
///
///     {"format": "proclip-features", "version": 1, "description": "...", "dtype": "float16",
///      "d_embed": 32, "d_llm": 64, "variants": ["short_en", "long_en", ...], "checksum": "crc32",
///      "shards": [{"name": "shard-00000", "split": "train", "rows": 2048,
///                  "files": {"image.npy": {"bytes": 131200, "crc32": "9a0c41f2"}, ...}}, ...],
///      "prompts": {"directory": "prompts", "labels": [...], "held_out": [...], "files": {...}},
///      "source": {"kind": "simulation", ...}}
///
/// Row order is the shards' order; a global sample index counts rows across all shards in that
/// order. Splits are per shard.
public struct Manifest: Sendable, Codable, Equatable {
    /// Always `proclip-features`.
    public var format: String
    /// Format version; this reader knows 1.
    public var version: Int
    /// One line for humans.
    public var description: String
    /// Element type of the feature arrays (`float32` or `float16`).
    public var dtype: NpyDType
    /// Width of CLIP's joint space (image and CLIP-text embeddings).
    public var dEmbed: Int
    /// Width of the LLM embedding.
    public var dLLM: Int
    /// The V caption variants, in the order of the arrays' second axis.
    public var variants: [String]
    /// Checksum algorithm of `files` entries: `crc32`.
    public var checksum: String
    /// Shards in global row order.
    public var shards: [ShardEntry]
    /// Zero-shot prompts, when the dataset has them.
    public var prompts: PromptsEntry?
    /// Where the data came from (free-form: the simulation's parameters, or the extraction models).
    public var source: JSONValue?

    /// The format name.
    public static let formatName = "proclip-features"
    /// The version this code writes and reads.
    public static let currentVersion = 1

    /// A manifest of the current format and version.
    public init(description: String, dtype: NpyDType, dEmbed: Int, dLLM: Int, variants: [String],
                shards: [ShardEntry] = [], prompts: PromptsEntry? = nil, source: JSONValue? = nil) {
        format = Manifest.formatName
        version = Manifest.currentVersion
        self.description = description
        self.dtype = dtype
        self.dEmbed = dEmbed
        self.dLLM = dLLM
        self.variants = variants
        checksum = "crc32"
        self.shards = shards
        self.prompts = prompts
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case format, version, description, dtype, variants, checksum, shards, prompts, source
        case dEmbed = "d_embed"
        case dLLM = "d_llm"
    }

    /// Total rows of all shards.
    public var rows: Int { shards.reduce(0) { $0 + $1.rows } }

    /// Rows of one split.
    public func rows(in split: Split) -> Int { shards.filter { $0.split == split }.reduce(0) { $0 + $1.rows } }

    /// The manifest as pretty-printed JSON with sorted keys.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Reads and decodes `path` (format checks only; `FeatureDataset.open` checks the files).
    public static func read(_ path: String) throws -> Manifest {
        let bytes = try Files.read(path)
        let m: Manifest
        do {
            m = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        } catch {
            throw FileError(path, "not a valid manifest: \(jsonReason(error))")
        }
        try m.check(path: path)
        return m
    }

    /// Checks the fields that need no file: format, version, dims, variants, shard names and counts.
    public func check(path: String) throws {
        func fail(_ s: String) -> FileError { FileError(path, s) }
        if format != Manifest.formatName { throw fail("format '\(format)': expected '\(Manifest.formatName)'") }
        if version != Manifest.currentVersion { throw fail("format version \(version): this proclip reads version \(Manifest.currentVersion)") }
        if dtype == .int32 { throw fail("dtype int32: feature arrays must be float32 or float16") }
        if dEmbed <= 0 || dLLM <= 0 { throw fail("d_embed \(dEmbed) and d_llm \(dLLM) must be positive") }
        if variants.isEmpty { throw fail("no caption variants") }
        if Set(variants).count != variants.count { throw fail("caption variants repeat: \(variants)") }
        if checksum != "crc32" { throw fail("checksum '\(checksum)': this proclip knows 'crc32'") }
        if shards.isEmpty { throw fail("no shards") }
        var names = Set<String>()
        for s in shards {
            if s.name.isEmpty || s.name.contains("/") || s.name.hasPrefix(".") { throw fail("shard name '\(s.name)' is not a plain directory name") }
            if !names.insert(s.name).inserted { throw fail("shard '\(s.name)' is listed twice") }
            if s.rows < 0 { throw fail("shard '\(s.name)': negative row count \(s.rows)") }
            for f in ["image.npy", "clip_text.npy", "llm.npy"] where s.files[f] == nil {
                throw fail("shard '\(s.name)': no entry for \(f)")
            }
        }
        if let p = prompts {
            if p.labels.isEmpty { throw fail("prompts: no labels") }
            if let t = p.texts, t.count != p.labels.count { throw fail("prompts: \(t.count) texts for \(p.labels.count) labels") }
            if let bad = p.heldOut.first(where: { $0 < 0 || $0 >= p.labels.count }) { throw fail("prompts: held-out label \(bad) out of range") }
        }
    }

    /// A stable 64-bit content hash, 16 hex digits, for hosts to compare: FNV-1a-64 over the
    /// canonical text (one line each) `proclip-features <version>`, `dtype <dtype>`,
    /// `dims <d_embed> <d_llm>`, `variants <v1> <v2> ...`, then per shard
    /// `shard <name> <split> <rows>` followed by `file <name> <bytes> <crc32>` in file-name order,
    /// then `prompts <directory> <labels>` and its files the same way. Whitespace, key order and
    /// the free-form `description`/`source` do not change it; any data byte does (via the CRCs).
    public var contentHash: String {
        var text = "\(format) \(version)\ndtype \(dtype.rawValue)\ndims \(dEmbed) \(dLLM)\nvariants \(variants.joined(separator: " "))\n"
        func files(_ f: [String: FileEntry]) {
            for name in f.keys.sorted() { text += "file \(name) \(f[name]!.bytes) \(f[name]!.crc32)\n" }
        }
        for s in shards {
            text += "shard \(s.name) \(s.split.rawValue) \(s.rows)\n"
            files(s.files)
        }
        if let p = prompts {
            text += "prompts \(p.directory) \(p.labels.count)\n"
            files(p.files)
        }
        let h = Manifest.fnv1a64(Array(text.utf8))
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// FNV-1a, 64 bits.
    public static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}

/// A one-line reason for a decoding error (Foundation's descriptions span lines).
func jsonReason(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, let ctx):
        return "missing key '\(pathText(ctx.codingPath + [key]))'"
    case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
        return "wrong type at '\(pathText(ctx.codingPath))'"
    case DecodingError.dataCorrupted(let ctx):
        return ctx.codingPath.isEmpty ? "invalid JSON" : "invalid value at '\(pathText(ctx.codingPath))'"
    default:
        return "\(error)".split(separator: "\n").first.map(String.init) ?? "unreadable"
    }
}

private func pathText(_ path: [CodingKey]) -> String {
    path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
}
