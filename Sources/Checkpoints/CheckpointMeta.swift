import Basics
import FoundationEssentials
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Where training stood when a checkpoint was taken, and what it was trained on. The trainer
/// fills it; the file stores it as safetensors `__metadata__` strings (see `MetaKey`), and a
/// resume reads it back exactly.
public struct CheckpointMeta: Sendable, Equatable {
    /// Optimizer steps completed in the whole job (the global step).
    public var step: Int
    /// Index of the curriculum phase in the job config (0 = the first phase).
    public var phaseIndex: Int
    /// Name of that phase, e.g. `inherit`.
    public var phaseName: String
    /// Optimizer steps completed within the phase.
    public var phaseStep: Int
    /// Whether the checkpoint was taken at the end of its phase (kept by retention forever).
    public var phaseEnd: Bool
    /// Epoch of the phase the next step reads from.
    public var epoch: Int
    /// Position in that epoch: steps of it already taken (the sampler's `EpochPosition.step`).
    public var epochStep: Int
    /// AdamW's step count `t` for the phase (bias correction); 0 with fresh moments.
    public var optimizerStep: Int
    /// The trainer's random number generator state, as 64-bit words.
    public var rngState: [UInt64]
    /// The job config's text, as the user wrote it.
    public var config: String
    /// Hash of the canonical config (`JobConfig.hash`).
    public var configHash: String
    /// Content hash of the dataset manifest the job trains on.
    public var manifestHash: String
    /// Free-form entries the trainer adds (stored as `extra.<key>`).
    public var extra: [String: String]

    /// A value with every field given; `extra` defaults to empty.
    public init(step: Int, phaseIndex: Int, phaseName: String, phaseStep: Int, phaseEnd: Bool = false, epoch: Int,
                epochStep: Int, optimizerStep: Int, rngState: [UInt64], config: String, configHash: String,
                manifestHash: String, extra: [String: String] = [:]) {
        self.step = step
        self.phaseIndex = phaseIndex
        self.phaseName = phaseName
        self.phaseStep = phaseStep
        self.phaseEnd = phaseEnd
        self.epoch = epoch
        self.epochStep = epochStep
        self.optimizerStep = optimizerStep
        self.rngState = rngState
        self.config = config
        self.configHash = configHash
        self.manifestHash = manifestHash
        self.extra = extra
    }
}

extension CheckpointMeta {
    /// Refuses values a reader would refuse (negative counts, an empty `extra` key), so a bad
    /// value fails the save instead of making the checkpoint unreadable.
    func check(path: String) throws {
        let counts = [(MetaKey.step, step), (MetaKey.phaseIndex, phaseIndex), (MetaKey.phaseStep, phaseStep),
                      (MetaKey.epoch, epoch), (MetaKey.epochStep, epochStep), (MetaKey.optimizerStep, optimizerStep)]
        for (key, value) in counts where value < 0 {
            throw FileError(path, "not saved: metadata '\(key)' must be a non-negative integer, got \(value)")
        }
        if extra.keys.contains("") { throw FileError(path, "not saved: metadata 'extra.': empty key") }
    }
}

/// The `__metadata__` keys of a checkpoint (format version 1). Every key is required; free-form
/// entries go under `extra.`; any other key is refused, so a newer format must bump the version.
public enum MetaKey {
    /// The keys, one constant each (values described in docs/checkpoints.md).
    public static let format = "format", formatVersion = "format_version"
    public static let step = "step", phaseIndex = "phase_index", phaseName = "phase_name"
    public static let phaseStep = "phase_step", phaseEnd = "phase_end", epoch = "epoch", epochStep = "epoch_step"
    public static let optimizerStep = "optimizer_step", rngState = "rng_state"
    public static let config = "config", configHash = "config_hash", manifestHash = "manifest_hash"
    public static let model = "model", byteShuffle = "byte_shuffle", created = "created", producer = "proclip_version"
    /// Prefix of the trainer's free-form entries.
    public static let extraPrefix = "extra."

    static let required = [format, formatVersion, step, phaseIndex, phaseName, phaseStep, phaseEnd, epoch, epochStep,
                           optimizerStep, rngState, config, configHash, manifestHash, model, byteShuffle, created, producer]
}

/// What a checkpoint file says about itself beyond the training position.
struct FileFacts: Equatable {
    var model: ModelShape
    var byteShuffle: Bool
    /// UTC creation time, ISO 8601 (`2025-01-31T12:00:00Z`).
    var created: String
    /// proclip release that wrote the file.
    var producer: String
}

enum CheckpointFormat {
    /// The `format` entry of every checkpoint.
    static let name = "proclip-checkpoint"
    /// The format version written, and the newest one read.
    static let version = 1

    /// The `__metadata__` map of a checkpoint.
    static func metadata(_ m: CheckpointMeta, _ facts: FileFacts) -> [String: String] {
        var d: [String: String] = [
            MetaKey.format: name, MetaKey.formatVersion: String(version),
            MetaKey.step: String(m.step), MetaKey.phaseIndex: String(m.phaseIndex), MetaKey.phaseName: m.phaseName,
            MetaKey.phaseStep: String(m.phaseStep), MetaKey.phaseEnd: String(m.phaseEnd),
            MetaKey.epoch: String(m.epoch), MetaKey.epochStep: String(m.epochStep),
            MetaKey.optimizerStep: String(m.optimizerStep),
            MetaKey.rngState: m.rngState.map(hex16).joined(separator: ","),
            MetaKey.config: m.config, MetaKey.configHash: m.configHash, MetaKey.manifestHash: m.manifestHash,
            MetaKey.model: modelJSON(facts.model), MetaKey.byteShuffle: String(facts.byteShuffle),
            MetaKey.created: facts.created, MetaKey.producer: facts.producer,
        ]
        for (k, v) in m.extra { d[MetaKey.extraPrefix + k] = v }
        return d
    }

    /// Parses and checks a `__metadata__` map; errors name `source` and the key.
    static func parse(_ d: [String: String], source: String) throws -> (CheckpointMeta, FileFacts) {
        func fail(_ key: String, _ problem: String) -> FileError { FileError(source, "metadata '\(key)': \(problem)") }
        for key in MetaKey.required where d[key] == nil { throw fail(key, "missing") }
        for key in d.keys where !MetaKey.required.contains(key) {
            guard key.hasPrefix(MetaKey.extraPrefix), key.count > MetaKey.extraPrefix.count else {
                throw fail(key, "unknown key (format version \(version) has no such entry)")
            }
        }
        guard d[MetaKey.format] == name else { throw fail(MetaKey.format, "expected '\(name)', got '\(d[MetaKey.format]!)'") }
        let v = try count(d, MetaKey.formatVersion, fail)
        guard v >= 1, v <= version else { throw fail(MetaKey.formatVersion, "version \(v) is not one this proclip reads (1...\(version))") }
        func flag(_ key: String) throws -> Bool {
            switch d[key]! {
            case "true": return true
            case "false": return false
            case let s: throw fail(key, "expected true or false, got '\(s.prefix(40))'")
            }
        }
        var rng: [UInt64] = []
        let rngText = d[MetaKey.rngState]!
        if !rngText.isEmpty {
            for word in rngText.split(separator: ",", omittingEmptySubsequences: false) {
                guard word.count == 16, let w = UInt64(word, radix: 16) else {
                    throw fail(MetaKey.rngState, "expected comma-separated 16-digit hex words, got '\(word.prefix(40))'")
                }
                rng.append(w)
            }
        }
        var extra: [String: String] = [:]
        for (k, value) in d where k.hasPrefix(MetaKey.extraPrefix) { extra[String(k.dropFirst(MetaKey.extraPrefix.count))] = value }
        let meta = CheckpointMeta(
            step: try count(d, MetaKey.step, fail), phaseIndex: try count(d, MetaKey.phaseIndex, fail),
            phaseName: d[MetaKey.phaseName]!, phaseStep: try count(d, MetaKey.phaseStep, fail),
            phaseEnd: try flag(MetaKey.phaseEnd), epoch: try count(d, MetaKey.epoch, fail),
            epochStep: try count(d, MetaKey.epochStep, fail), optimizerStep: try count(d, MetaKey.optimizerStep, fail),
            rngState: rng, config: d[MetaKey.config]!, configHash: d[MetaKey.configHash]!,
            manifestHash: d[MetaKey.manifestHash]!, extra: extra)
        let facts = FileFacts(model: try parseModel(d[MetaKey.model]!, fail), byteShuffle: try flag(MetaKey.byteShuffle),
                              created: d[MetaKey.created]!, producer: d[MetaKey.producer]!)
        return (meta, facts)
    }

    private static func count(_ d: [String: String], _ key: String, _ fail: (String, String) -> FileError) throws -> Int {
        let s = d[key]!
        guard !s.isEmpty, s.count <= 18, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(s) else {
            throw fail(key, "expected a non-negative integer, got '\(s.prefix(40))'")
        }
        return n
    }

    static let modelKeys = ["d_llm", "d_embed", "text_blocks", "text_expansion", "image_blocks", "image_expansion"]

    /// The model's sizes as one JSON object, e.g. `{"d_llm":4096,"d_embed":768,…}`.
    static func modelJSON(_ m: ModelShape) -> String {
        let values = [m.dLLM, m.dEmbed, m.textBlocks, m.textExpansion, m.imageBlocks, m.imageExpansion]
        return "{" + zip(modelKeys, values).map { "\"\($0)\":\($1)" }.joined(separator: ",") + "}"
    }

    private static func parseModel(_ text: String, _ fail: (String, String) -> FileError) throws -> ModelShape {
        guard let d = try? JSONDecoder().decode([String: Int].self, from: Data(text.utf8)) else {
            throw fail(MetaKey.model, "expected a JSON object of integers, got '\(text.prefix(80))'")
        }
        guard Set(d.keys) == Set(modelKeys) else {
            throw fail(MetaKey.model, "expected the keys \(modelKeys.joined(separator: ", ")), got \(d.keys.sorted().joined(separator: ", "))")
        }
        let s = ModelShape(dLLM: d["d_llm"]!, dEmbed: d["d_embed"]!, textBlocks: d["text_blocks"]!, textExpansion: d["text_expansion"]!,
                           imageBlocks: d["image_blocks"]!, imageExpansion: d["image_expansion"]!)
        if let p = s.problem() { throw fail(MetaKey.model, p) }
        guard ParameterLayout.fitsInMemory(s) else { throw fail(MetaKey.model, "sizes too large to be a real model") }
        return s
    }

    /// The current UTC time as ISO 8601, to the second.
    static func now() -> String {
        var t = time(nil)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func two(_ x: Int32) -> String { x < 10 ? "0\(x)" : "\(x)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
    }
}

/// `w` as 16 lowercase hex digits.
func hex16(_ w: UInt64) -> String {
    let s = String(w, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

extension ParameterLayout {
    /// Whether a layout of `shape` is of a size a real model could have (under 2^40 floats and
    /// 4096 blocks), so a corrupt file cannot make the reader plan an absurd layout.
    static func fitsInMemory(_ s: ModelShape) -> Bool {
        guard s.textBlocks <= 4096, s.imageBlocks <= 4096 else { return false }
        let d = Double(s.dLLM), e = Double(s.dEmbed)
        let text = Double(s.textBlocks + 1) * d * d * Double(s.textExpansion) * 2 + e * d
        let image = Double(s.imageBlocks) * e * e * Double(s.imageExpansion) * 2
        return text + image < Double(1 << 40)
    }
}
