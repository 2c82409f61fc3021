import Basics
import Tensors

/// A feature dataset opened for training: the manifest, and every shard's arrays memory-mapped
/// and checked (headers, dtypes, shapes against the manifest, file sizes); with
/// `verifyChecksums`, every listed file's CRC-32 too (what trainers, workers and the coordinator
/// do). NaN/Inf and the captions are left to `DatasetVerifier`.
///
/// A *global sample index* counts rows over all shards in manifest order, `0..<count`. Reading
/// rows (`read(rows:variants:…)`, in FeatureDataset+Read.swift) copies them into caller buffers
/// and allocates nothing.
///
/// `@unchecked Sendable` (the row views hold raw pointers into the maps): every stored property
/// is a `let` set in `init`, over read-only maps, so any thread may read rows at any time.
public final class FeatureDataset: @unchecked Sendable {
    /// The dataset directory.
    public let directory: String
    /// The parsed manifest.
    public let manifest: Manifest
    /// Total rows (all splits).
    public let count: Int
    /// Zero-shot prompts, when the dataset has them.
    public let prompts: Prompts?
    /// Width of CLIP's joint space.
    public var dEmbed: Int { manifest.dEmbed }
    /// Width of the LLM embedding.
    public var dLLM: Int { manifest.dLLM }
    /// Number of caption variants V.
    public var variantCount: Int { manifest.variants.count }

    /// The mapped arrays, kept alive for `views`.
    let shards: [ShardArrays]
    /// Raw views of `shards` for the read loops (no reference counting per row).
    let views: ContiguousArray<ShardView>

    /// Opens and checks `directory`; throws the first problem as a one-line `FileError`.
    ///
    /// With `verifyChecksums`, first reads every file the manifest lists and compares its size
    /// and CRC-32 with the manifest (a mismatch names the file, the CRC found and the one
    /// expected), so a damaged shard is refused before training reads it. This reads every
    /// byte once (about 1.6 GB/s from the page cache on one core, BENCHMARKS.md); without it
    /// only headers and sizes are read.
    public static func open(_ directory: String, verifyChecksums: Bool = false) throws -> FeatureDataset {
        var problems: [FileError] = []
        let manifest = try Manifest.read(directory + "/manifest.json")
        if verifyChecksums {
            ManifestChecksums.check(directory, manifest, stopAtFirst: true, &problems)
            if let first = problems.first { throw first }
        }
        let dataset = load(directory, manifest, &problems)
        if let first = problems.first { throw first }
        return dataset!
    }

    /// Opens what can be opened, collecting every problem; nil when any shard failed.
    static func load(_ directory: String, _ manifest: Manifest, _ problems: inout [FileError]) -> FeatureDataset? {
        var shards: [ShardArrays] = []
        var start = 0
        for entry in manifest.shards {
            if let s = ShardArrays.open(directory, entry, manifest, start: start, &problems) { shards.append(s) }
            start += entry.rows
        }
        var prompts: Prompts?
        if let p = manifest.prompts {
            prompts = Prompts.open(directory, p, manifest, &problems)
        }
        guard shards.count == manifest.shards.count, manifest.prompts == nil || prompts != nil else { return nil }
        return FeatureDataset(directory, manifest, shards, prompts)
    }

    private init(_ directory: String, _ manifest: Manifest, _ shards: [ShardArrays], _ prompts: Prompts?) {
        self.directory = directory
        self.manifest = manifest
        self.shards = shards
        self.prompts = prompts
        count = manifest.rows
        views = ContiguousArray(shards.map(ShardView.init))
    }

    /// The global indices of every row of `split`, ascending.
    public func indices(of split: Split) -> [Int] {
        var out: [Int] = []
        for s in shards where s.entry.split == split { out += s.start..<(s.start + s.entry.rows) }
        return out
    }

    /// The index of the caption variant called `name`; the error lists the variants there are.
    public func variantIndex(_ name: String) throws -> Int {
        guard let i = manifest.variants.firstIndex(of: name) else {
            throw FileError(directory + "/manifest.json", "no caption variant '\(name)' (have \(manifest.variants.joined(separator: ", ")))")
        }
        return i
    }

    /// The concept ids of global row `row` (from `concepts.npy`, padding removed), or nil when the
    /// dataset stores none. For evaluation, not the training step (it allocates).
    public func concepts(of row: Int) -> [Int]? {
        let (s, r) = locate(row)
        guard let c = shards[s].concepts else { return nil }
        let k = c.header.shape[1]
        return (0..<k).map { Int(c.int32(at: r * k + $0)) }.filter { $0 >= 0 }
    }

    /// (shard position, row within the shard) of a global index.
    @inline(__always)
    func locate(_ row: Int) -> (Int, Int) {
        precondition(row >= 0 && row < count, "sample index \(row) outside 0..<\(count)")
        return views.withUnsafeBufferPointer { v in
            var lo = 0, hi = v.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if v[mid].start <= row { lo = mid } else { hi = mid - 1 }
            }
            return (lo, row - v[lo].start)
        }
    }
}

/// Zero-shot prompts of a dataset: one CLIP-text and one LLM embedding per label.
public struct Prompts: Sendable {
    /// Label names, one per prompt.
    public let labels: [String]
    /// Labels never named in a training caption.
    public let heldOut: [Int]
    /// CLIP text embeddings, `(C, D_embed)` row-major.
    public let clipText: [Float]
    /// LLM embeddings, `(C, D_llm)` row-major.
    public let llm: [Float]

    static func open(_ directory: String, _ p: PromptsEntry, _ m: Manifest, _ problems: inout [FileError]) -> Prompts? {
        let dir = directory + "/" + p.directory
        let c = p.labels.count
        func load(_ name: String, _ d: Int, _ axes: String) -> [Float]? {
            do {
                let a = try NpyArray(path: "\(dir)/\(name).npy")
                try a.expect(name: name, dtype: m.dtype, shape: [c, d], shapeText: axes)
                var out = [Float](repeating: 0, count: c * d)
                out.withUnsafeMutableBufferPointer { a.copyFloats(from: 0, count: c * d, to: $0.baseAddress!) }
                return out
            } catch let e as FileError {
                problems.append(e)
            } catch {
                problems.append(FileError(dir, "\(error)"))
            }
            return nil
        }
        let clip = load("clip_text", m.dEmbed, "(C, D_embed)")
        let llm = load("llm", m.dLLM, "(C, D_llm)")
        guard let clip, let llm else { return nil }
        return Prompts(labels: p.labels, heldOut: p.heldOut, clipText: clip, llm: llm)
    }
}

/// One shard's mapped arrays.
struct ShardArrays {
    let entry: ShardEntry
    let start: Int
    let image: NpyArray
    let clipText: NpyArray
    let llm: NpyArray
    let concepts: NpyArray?

    /// Maps and checks one shard, appending one problem per bad file.
    static func open(_ directory: String, _ entry: ShardEntry, _ m: Manifest, start: Int, _ problems: inout [FileError]) -> ShardArrays? {
        let dir = directory + "/" + entry.name
        if !Files.exists(dir) {
            problems.append(FileError(dir, "missing: shard '\(entry.name)' is listed in manifest.json"))
            return nil
        }
        let n = entry.rows, v = m.variants.count
        func array(_ name: String, _ dtype: NpyDType?, _ shape: [Int]?, _ axes: String) -> NpyArray? {
            let path = "\(dir)/\(name).npy"
            do {
                let a = try NpyArray(path: path)
                if let shape {
                    try a.expect(name: name, dtype: dtype, shape: shape, shapeText: axes)
                } else if a.header.dtype != .int32 || a.header.shape.count != 2 || a.header.shape[0] != n {
                    throw FileError(path, "array '\(name)': expected int32 of shape [\(n), K] (n, K), got \(a.header.dtype) \(a.header.shape)")
                }
                if let want = entry.files["\(name).npy"]?.bytes, want != a.file.bytes.count {
                    throw FileError(path, "array '\(name)': file is \(a.file.bytes.count) bytes, manifest.json says \(want)")
                }
                return a
            } catch let e as FileError {
                problems.append(e)
            } catch {
                problems.append(FileError(path, "\(error)"))
            }
            return nil
        }
        let image = array("image", m.dtype, [n, m.dEmbed], "(n, D_embed)")
        let clip = array("clip_text", m.dtype, [n, v, m.dEmbed], "(n, V, D_embed)")
        let llm = array("llm", m.dtype, [n, v, m.dLLM], "(n, V, D_llm)")
        let concepts = entry.files["concepts.npy"] == nil ? nil : array("concepts", .int32, nil, "")
        guard let image, let clip, let llm, entry.files["concepts.npy"] == nil || concepts != nil else { return nil }
        return ShardArrays(entry: entry, start: start, image: image, clipText: clip, llm: llm, concepts: concepts)
    }
}

/// Raw pointers into one shard, for the copy loops.
struct ShardView {
    let start: Int
    let dtype: NpyDType
    let image: UnsafeRawPointer
    let clipText: UnsafeRawPointer
    let llm: UnsafeRawPointer

    init(_ s: ShardArrays) {
        start = s.start
        dtype = s.image.header.dtype
        image = s.image.data
        clipText = s.clipText.data
        llm = s.llm.data
    }
}
