/// The two curriculum stages (docs/design.md §1).
public enum PhaseKind: String, Sendable, Codable, CaseIterable {
    /// Representation inheritance: the text adaptor is distilled from CLIP's text embedding.
    case inherit
    /// Contrastive tuning of image head, adaptor and scale with EMA self-distillation.
    case contrast
}

/// What a phase's loss is made of (docs/design.md §2). Variant indices refer to the job's caption
/// variants, in the order the job config lists them.
public struct LossSettings: Sendable, Equatable {
    public var kind: PhaseKind
    /// inherit: caption variants whose text features get the instance loss against CLIP text.
    public var insVariants: [Int]
    /// inherit: caption variants whose text features get the structure loss against CLIP text.
    public var strVariants: [Int]
    public var wIns: Float
    public var wStr: Float
    /// Structure-loss group size G (rows of the global batch per group).
    public var group: Int
    /// contrast: weight λ of the self-distillation terms.
    public var lambda: Float
    /// contrast: the caption variants a sample's text may be drawn from (one per sample per step).
    public var contrastVariants: [Int]

    public init(kind: PhaseKind, insVariants: [Int] = [], strVariants: [Int] = [], wIns: Float = 1, wStr: Float = 1,
                group: Int, lambda: Float = 4e-4, contrastVariants: [Int] = []) {
        self.kind = kind
        self.insVariants = insVariants
        self.strVariants = strVariants
        self.wIns = wIns
        self.wStr = wStr
        self.group = group
        self.lambda = lambda
        self.contrastVariants = contrastVariants
    }

    /// inherit: the variants whose text is computed, sorted (the union of both losses' variants).
    /// contrast: one slot, whichever variant each sample drew.
    public var textVariants: [Int] {
        kind == .inherit ? Array(Set(insVariants).union(strVariants)).sorted() : [0]
    }

    /// The settings as one JSON object, for driving another implementation identically.
    public var json: String {
        func list(_ v: [Int]) -> String { "[" + v.map(String.init).joined(separator: ", ") + "]" }
        return "{\"phase\": \"\(kind.rawValue)\", \"ins_variants\": \(list(insVariants)), \"str_variants\": \(list(strVariants)), "
            + "\"group\": \(group), \"w_ins\": \(wIns), \"w_str\": \(wStr), \"lambda\": \(lambda), "
            + "\"contrast_variants\": \(list(contrastVariants))}"
    }
}

/// Loss terms of one step (or of the part a worker owns; owners' terms add up).
public struct LossTerms: Sendable, Equatable {
    public var ins = 0.0, str = 0.0, clip = 0.0, sdIns = 0.0, sdStr = 0.0, total = 0.0

    public init() {}

    /// The terms a phase reports, by their names in files and logs.
    public func named(_ kind: PhaseKind) -> [(String, Double)] {
        switch kind {
        case .inherit: return [("ins", ins), ("str", str), ("total", total)]
        case .contrast: return [("clip", clip), ("sd_ins", sdIns), ("sd_str", sdStr), ("total", total)]
        }
    }

    /// Adds another owner's terms.
    public static func + (a: LossTerms, b: LossTerms) -> LossTerms {
        var r = LossTerms()
        r.ins = a.ins + b.ins
        r.str = a.str + b.str
        r.clip = a.clip + b.clip
        r.sdIns = a.sdIns + b.sdIns
        r.sdStr = a.sdStr + b.sdStr
        r.total = a.total + b.total
        return r
    }

    /// The six terms as an array (for exchanging them between workers).
    public var values: [Double] { [ins, str, clip, sdIns, sdStr, total] }

    /// Terms from `values`' order.
    public init(values v: [Double]) {
        precondition(v.count == 6)
        ins = v[0]; str = v[1]; clip = v[2]; sdIns = v[3]; sdStr = v[4]; total = v[5]
    }
}
