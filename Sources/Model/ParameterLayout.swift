/// Which optimizer group a parameter belongs to: each group has its own learning rate and can be
/// frozen or trained per phase.
public enum ParameterGroup: Int, Sendable, CaseIterable, Codable {
    case text, image, scale

    /// The name used in configs and reports.
    public var name: String {
        switch self {
        case .text: return "text"
        case .image: return "image"
        case .scale: return "scale"
        }
    }
}

/// A set of parameter groups (an option set, so passing one around never allocates).
public struct GroupSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let text = GroupSet(rawValue: 1 << 0)
    public static let image = GroupSet(rawValue: 1 << 1)
    public static let scale = GroupSet(rawValue: 1 << 2)
    public static let all: GroupSet = [.text, .image, .scale]

    /// The set holding one group.
    public init(_ g: ParameterGroup) { rawValue = 1 << UInt8(g.rawValue) }

    /// Whether the set holds `g`.
    public func has(_ g: ParameterGroup) -> Bool { contains(GroupSet(g)) }

    /// The groups, in slab order.
    public var groups: [ParameterGroup] { ParameterGroup.allCases.filter { has($0) } }
}

/// Offsets of one residual block's six tensors (LayerNorm gain and bias, two Linear layers).
public struct BlockOffsets: Sendable, Equatable {
    public let lnWeight, lnBias, w1, b1, w2, b2: Int
    /// Block width `D` and hidden width `H`.
    public let dim, hidden: Int
}

/// The parameter plan computed once from a `ModelShape`: every tensor's PyTorch name, shape and
/// offset in one flat slab. Parameters, gradients and both Adam moments are slabs with these same
/// offsets, and the gradient slab is the all-reduce buffer.
///
/// Order (and so the slab) follows the official ProCLIP modules: the text adaptor
/// (`text.text_adaptor.{i}.ln|fn.0|fn.3`, final LayerNorm `{L}`, projection `{L+1}`), the image
/// head (`visual.head.{i}.…`), then `logit_scale`. Groups are contiguous ranges, so a phase that
/// trains only the text adaptor reduces only that range. Offsets are aligned to 16 floats.
public struct ParameterLayout: Sendable {
    /// One tensor of the plan.
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// PyTorch shape (`[out, in]` for weights, `[]` for the logit scale).
        public let shape: [Int]
        public let offset: Int
        public let count: Int
        public let group: ParameterGroup
        /// Matrices get weight decay; biases, LayerNorm parameters and the logit scale do not.
        public var isMatrix: Bool { shape.count == 2 }
    }

    public let shape: ModelShape
    public let entries: [Entry]
    /// Total floats in a slab (with alignment padding).
    public let count: Int
    /// Slab range of each group.
    public let groupRanges: [Range<Int>]
    public let textBlocks: [BlockOffsets]
    public let textFinalLN: (weight: Int, bias: Int)
    public let textProjection: (weight: Int, bias: Int)
    public let imageBlocks: [BlockOffsets]
    public let logitScale: Int
    /// Slab ranges in the order backward finishes them: the text adaptor's final LayerNorm and
    /// projection, its blocks from last to first, then the image head's blocks from last to first
    /// (each range runs to the start of the next tensor, padding included, so neighbours adjoin).
    public let textOutputRange: Range<Int>
    public let textBlockRanges: [Range<Int>]
    public let imageBlockRanges: [Range<Int>]

    static let alignment = 16

    public init(_ shape: ModelShape) {
        var entries: [Entry] = []
        var offset = 0
        var ranges: [Range<Int>] = []
        func add(_ name: String, _ dims: [Int], _ group: ParameterGroup) -> Int {
            let n = dims.reduce(1, *)
            let at = offset
            entries.append(Entry(name: name, shape: dims, offset: at, count: n, group: group))
            offset += (n + ParameterLayout.alignment - 1) / ParameterLayout.alignment * ParameterLayout.alignment
            return at
        }
        func block(_ prefix: String, _ d: Int, _ h: Int, _ group: ParameterGroup) -> BlockOffsets {
            BlockOffsets(
                lnWeight: add(prefix + "ln.weight", [d], group), lnBias: add(prefix + "ln.bias", [d], group),
                w1: add(prefix + "fn.0.weight", [h, d], group), b1: add(prefix + "fn.0.bias", [h], group),
                w2: add(prefix + "fn.3.weight", [d, h], group), b2: add(prefix + "fn.3.bias", [d], group),
                dim: d, hidden: h)
        }
        let L = shape.textBlocks
        textBlocks = (0..<L).map { block("text.text_adaptor.\($0).", shape.dLLM, shape.textHidden, .text) }
        textFinalLN = (add("text.text_adaptor.\(L).weight", [shape.dLLM], .text),
                       add("text.text_adaptor.\(L).bias", [shape.dLLM], .text))
        textProjection = (add("text.text_adaptor.\(L + 1).weight", [shape.dEmbed, shape.dLLM], .text),
                          add("text.text_adaptor.\(L + 1).bias", [shape.dEmbed], .text))
        ranges.append(0..<offset)
        let imageStart = offset
        imageBlocks = (0..<shape.imageBlocks).map { block("visual.head.\($0).", shape.dEmbed, shape.imageHidden, .image) }
        ranges.append(imageStart..<offset)
        let scaleStart = offset
        logitScale = add("logit_scale", [], .scale)
        ranges.append(scaleStart..<offset)
        self.shape = shape
        self.entries = entries
        self.count = offset
        self.groupRanges = ranges
        let textEnd = ranges[0].upperBound, imageEnd = ranges[1].upperBound
        let tb = textBlocks, ib = imageBlocks, finalLN = textFinalLN.weight
        textOutputRange = finalLN..<textEnd
        textBlockRanges = tb.indices.map { l in tb[l].lnWeight..<(l + 1 < tb.count ? tb[l + 1].lnWeight : finalLN) }
        imageBlockRanges = ib.indices.map { l in ib[l].lnWeight..<(l + 1 < ib.count ? ib[l + 1].lnWeight : imageEnd) }
    }

    /// The slab range of a group.
    public func range(of group: ParameterGroup) -> Range<Int> { groupRanges[group.rawValue] }

    /// The entry called `name`, if any.
    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// Entries of the given groups, in slab order.
    public func entries(in groups: GroupSet) -> [Entry] { entries.filter { groups.has($0.group) } }

    /// Number of real (unpadded) parameters in the given groups.
    public func parameterCount(in groups: GroupSet = .all) -> Int {
        entries(in: groups).reduce(0) { $0 + $1.count }
    }

    /// The smallest slab range covering the given groups (groups are contiguous and ordered).
    public func span(of groups: GroupSet) -> Range<Int> {
        let rs = groups.groups.map { range(of: $0) }
        guard let first = rs.first, let last = rs.last else { return 0..<0 }
        return first.lowerBound..<last.upperBound
    }
}
