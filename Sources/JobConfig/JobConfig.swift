import Basics
import Features
import Model
import Tensors
import Yams

/// How long a phase runs.
public enum PhaseLength: Sendable, Equatable {
    case epochs(Int)
    case steps(Int)
}

/// One phase of the curriculum plan.
public struct PhaseConfig: Sendable, Equatable {
    public var name: String
    public var kind: PhaseKind
    public var length: PhaseLength
    /// Global batch B (independent of the number of workers).
    public var batch: Int
    /// Parameter groups trained in this phase.
    public var train: GroupSet
    public var optimizer: AdamWSettings
    /// Linear warm-up steps before the cosine decay.
    public var warmup: Int
    /// EMA rate of the image head's teacher (1: a frozen copy of the original head).
    public var emaAlpha: Double
    /// Start the phase with zero Adam moments (the default) or keep the previous phase's.
    public var resetOptimizer: Bool
    /// Loss terms, weights, group size and caption variants (indices into the job's variants).
    public var loss: LossSettings
}

/// Where the training pairs come from.
public struct DataSection: Sendable, Equatable {
    /// Dataset directory (manifest.json and shards), relative to the working directory.
    public var path: String
    /// Caption variants the job uses, by name; every variant index in the phases refers to this list.
    public var variants: [String]
    /// When present and `path` is missing, `proclip train` generates the synthetic concept world
    /// (a simulation) there with these settings (its dims default to the model's).
    public var synthetic: SynthWorldSpec?
}

/// A proclip job: model sizes, seed, data and the phase plan, read strictly from YAML.
public struct JobConfig: Sendable, Equatable {
    public var name: String
    public var seed: UInt64
    public var model: ModelShape
    public var data: DataSection
    public var phases: [PhaseConfig]
    /// The YAML text the config was read from (kept in checkpoints).
    public var text: String
    /// Hash of the parsed config's canonical form (hosts compare it; comments do not matter).
    public var hash: String

    /// The phase called `name`, or an error listing the phases.
    public func phase(named name: String) throws -> PhaseConfig {
        guard let p = phases.first(where: { $0.name == name }) else {
            throw ConfigError(source: self.name, key: "phases", problem: "no phase named '\(name)' (phases: \(phases.map(\.name).joined(separator: ", ")))")
        }
        return p
    }

    /// Reads a config file.
    public static func load(path: String) throws -> JobConfig {
        let bytes = try Files.read(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(source: path, key: "", problem: "not UTF-8 text")
        }
        return try parse(text, source: path)
    }

    /// Parses config text; `source` names it in errors.
    public static func parse(_ text: String, source: String) throws -> JobConfig {
        let root: Node
        do {
            guard let n = try Yams.compose(yaml: text) else { throw ConfigError(source: source, key: "", problem: "empty config") }
            root = n
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError(source: source, key: "", problem: "not valid YAML: \(String("\(error)".prefix(300).map { $0 == "\n" ? " " : $0 }))")
        }
        var top = ConfigNode(root, path: "", source: source)
        guard top.isMapping else { throw top.fail("expected a mapping of keys at the top level") }
        let name = try top.string("name")
        let seedValue = try top.int("seed", default: 0, min: 0)

        var m = try top.required("model")
        let model = ModelShape(
            dLLM: try m.int("d_llm", min: 1), dEmbed: try m.int("d_embed", min: 1),
            textBlocks: try m.int("text_blocks", default: 1, min: 0), textExpansion: try m.int("text_expansion", default: 8, min: 1),
            imageBlocks: try m.int("image_blocks", default: 1, min: 1), imageExpansion: try m.int("image_expansion", default: 4, min: 1))
        try m.finish()

        var d = try top.required("data")
        let path = try d.string("path")
        let variants = try d.strings("variants")
        if variants.isEmpty { throw d.fail("must name at least one caption variant", key: "variants") }
        if Set(variants).count != variants.count { throw d.fail("lists a variant twice", key: "variants") }
        var synthetic: SynthWorldSpec?
        if let s = try d.optional("synthetic") {
            guard s.isMapping else { throw s.fail("expected a mapping of the simulation's parameters") }
            let keys = try s.keys()
            var spec: SynthWorldSpec
            do {
                spec = try YAMLDecoder().decode(SynthWorldSpec.self, from: s.node)
            } catch let DecodingError.dataCorrupted(c) {
                throw ConfigError(source: source, key: s.child(c.codingPath.map(\.stringValue).joined(separator: ".")), problem: c.debugDescription)
            } catch let DecodingError.typeMismatch(_, c) {
                throw ConfigError(source: source, key: s.child(c.codingPath.map(\.stringValue).joined(separator: ".")), problem: "wrong type: \(c.debugDescription)")
            } catch {
                throw s.fail("\(error)")
            }
            if !keys.contains("d_embed") { spec.dEmbed = model.dEmbed }
            if !keys.contains("d_llm") { spec.dLLM = model.dLLM }
            guard spec.dEmbed == model.dEmbed, spec.dLLM == model.dLLM else {
                throw s.fail("the simulation's d_embed/d_llm (\(spec.dEmbed)/\(spec.dLLM)) differ from the model's (\(model.dEmbed)/\(model.dLLM))")
            }
            do { try spec.validate() } catch { throw s.fail("\(error)") }
            synthetic = spec
        }
        try d.finish()
        let data = DataSection(path: path, variants: variants, synthetic: synthetic)

        let phaseNodes = try top.required("phases").items()
        if phaseNodes.isEmpty { throw top.fail("must list at least one phase", key: "phases") }
        var phases: [PhaseConfig] = []
        for var p in phaseNodes {
            do {
                let phase = try readPhase(&p, variants: variants)
                if phases.contains(where: { $0.name == phase.name }) { throw p.fail("phase name '\(phase.name)' is used twice", key: "name") }
                phases.append(phase)
            } catch var e as ConfigError {
                // Every error inside a phase names it, not only its position in the list.
                e.phase = p.peek("name")
                throw e
            }
        }
        try top.finish()
        var config = JobConfig(name: name, seed: UInt64(seedValue), model: model, data: data, phases: phases, text: text, hash: "")
        config.hash = FNV1a64.hex(config.canonical)
        return config
    }

    private static func readPhase(_ p: inout ConfigNode, variants: [String]) throws -> PhaseConfig {
        let name = try p.string("name")
        let kindName = try p.string("kind", default: name)
        guard let kind = PhaseKind(rawValue: kindName) else {
            throw p.fail("unknown phase kind '\(kindName)' (inherit or contrast)", key: "kind")
        }
        let epochs = try p.optional("epochs").map { try $0.asInt(min: 1) }
        let steps = try p.optional("steps").map { try $0.asInt(min: 1) }
        let length: PhaseLength
        switch (epochs, steps) {
        case (let e?, nil): length = .epochs(e)
        case (nil, let s?): length = .steps(s)
        case (nil, nil): throw p.fail("give its length as epochs or steps")
        default: throw p.fail("give epochs or steps, not both")
        }
        let batch = try p.int("batch", min: 1)
        let group = try p.int("group", default: batch, min: 1)
        if group > batch { throw p.fail("must be in 1...batch (1...\(batch)), got \(group)", key: "group") }

        let defaultTrain: [String] = kind == .inherit ? ["text"] : ["text", "image", "scale"]
        var train: GroupSet = []
        for g in try p.strings("train", default: defaultTrain) {
            guard let pg = ParameterGroup.allCases.first(where: { $0.name == g }) else {
                throw p.fail("unknown parameter group '\(g)' (text, image, scale)", key: "train")
            }
            train.insert(GroupSet(pg))
        }
        if train.isEmpty { throw p.fail("must train at least one group", key: "train") }

        var lr: [ParameterGroup: Double] = [:]
        if let node = try p.optional("lr") {
            if node.isMapping {
                var n = node
                for g in ParameterGroup.allCases {
                    if let v = try n.optional(g.name) { lr[g] = try v.asDouble(.nonNegative) }
                }
                try n.finish()
                for g in train.groups where lr[g] == nil { throw node.fail("no learning rate for trained group '\(g.name)'") }
            } else {
                let v = try node.asDouble(.nonNegative)
                for g in ParameterGroup.allCases { lr[g] = v }
            }
        } else {
            throw p.fail("missing (required)", key: "lr")
        }
        var opt = AdamWSettings(lr: lr)
        if let b = try p.optional("betas") {
            let nodes = try b.items()
            guard nodes.count == 2 else { throw b.fail("expected two numbers [beta1, beta2], each in [0, 1), got \(nodes.count)") }
            let items = try nodes.map { try $0.asDouble(.belowOne) }
            opt.beta1 = items[0]
            opt.beta2 = items[1]
        }
        opt.eps = try p.double("eps", default: 1e-6, .positive)
        opt.weightDecay = try p.double("weight_decay", default: 0.05, .nonNegative)
        opt.clipNorm = try p.optional("clip_grad_norm").map { try $0.asDouble(.positive) }
        let warmup = try p.int("warmup", default: 0, min: 0)
        let emaAlpha = try p.double("ema_alpha", default: 0.999, .unit)
        let reset = try p.bool("reset_optimizer", default: true)

        func indices(_ names: [String], _ key: String, _ node: ConfigNode) throws -> [Int] {
            try names.map { v in
                guard let i = variants.firstIndex(of: v) else {
                    throw node.fail("caption variant '\(v)' is not in data.variants (\(variants.joined(separator: ", ")))", key: key)
                }
                return i
            }
        }
        var loss = LossSettings(kind: kind, group: group)
        switch kind {
        case .inherit:
            // Without a `losses` key: instance and structure alignment on the first variant.
            loss.insVariants = [0]
            loss.strVariants = [0]
            if var l = try p.optional("losses") {
                loss.insVariants = []
                loss.strVariants = []
                loss.wIns = 0
                loss.wStr = 0
                if var ins = try l.optional("ins") {
                    loss.wIns = Float(try ins.double("weight", default: 1, .nonNegative))
                    loss.insVariants = try indices(try ins.strings("variants"), "variants", ins)
                    try ins.finish()
                }
                if var st = try l.optional("str") {
                    loss.wStr = Float(try st.double("weight", default: 1, .nonNegative))
                    loss.strVariants = try indices(try st.strings("variants"), "variants", st)
                    try st.finish()
                }
                try l.finish()
            }
            if loss.textVariants.isEmpty { throw p.fail("an inherit phase needs the ins or str loss on some variant", key: "losses") }
            if train != .text { throw p.fail("an inherit phase trains only the text adaptor (train: [text])", key: "train") }
        case .contrast:
            loss.lambda = Float(try p.double("lambda", default: 4e-4, .nonNegative))
            let names = try p.strings("variants", default: variants)
            if names.isEmpty { throw p.fail("must name at least one caption variant", key: "variants") }
            loss.contrastVariants = try indices(names, "variants", p)
        }
        try p.finish()
        return PhaseConfig(name: name, kind: kind, length: length, batch: batch, train: train, optimizer: opt,
                           warmup: warmup, emaAlpha: emaAlpha, resetOptimizer: reset, loss: loss)
    }

    /// A canonical one-line rendering of everything that affects training (hashed for `hash`).
    public var canonical: String {
        var s = "name=\(name);seed=\(seed);model=\(model.dLLM),\(model.dEmbed),\(model.textBlocks),\(model.textExpansion),\(model.imageBlocks),\(model.imageExpansion)"
        s += ";variants=\(data.variants.joined(separator: ","))"
        for p in phases {
            let len: String
            switch p.length {
            case .epochs(let e): len = "e\(e)"
            case .steps(let k): len = "s\(k)"
            }
            let lr = ParameterGroup.allCases.map { "\(p.optimizer.lr[$0] ?? 0)" }.joined(separator: ",")
            s += ";phase=\(p.name),\(p.kind.rawValue),\(len),b\(p.batch),t\(p.train.rawValue),lr\(lr)"
            s += ",o\(p.optimizer.beta1),\(p.optimizer.beta2),\(p.optimizer.eps),\(p.optimizer.weightDecay),\(p.optimizer.clipNorm ?? 0)"
            s += ",w\(p.warmup),a\(p.emaAlpha),r\(p.resetOptimizer),\(p.loss.json)"
        }
        return s
    }
}
