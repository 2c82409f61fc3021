import Tensors

/// One worker's part of a training step, in the stages of DESIGN §3, with every buffer planned
/// once for a phase's shapes:
///
/// 1. `forward` — the worker's rows to features, written to `local` (slots × rows × E);
/// 2. (caller) all-gather `local` of every rank into one buffer, rank after rank;
/// 3. `losses` — the owned loss terms on the global features and their gradient with respect to
///    every row, packed rank after rank into `packed` for the reduce-scatter; also writes the
///    owned part of d loss / d(log s) into the gradient slab;
/// 4. (caller) reduce-scatter `packed`: this worker receives the summed gradient of its rows;
/// 5. `backward` — its rows' feature gradients to parameter gradients in `grads`;
/// 6. (caller) all-reduce `grads` over the phase's trainable span; optimizer step.
///
/// Feature slots: inherit — text for each computed caption variant, then the normalised CLIP
/// text for each (no gradient); contrast — text, image, EMA teacher (no gradient). Gradients
/// exist for the first `gradSlots` slots.
///
/// A steady-state step allocates nothing.
public final class StepEngine {
    public let layout: ParameterLayout
    public let settings: LossSettings
    public let own: Ownership
    /// This worker's parameter gradients; the all-reduce buffer.
    public let grads: Slab

    /// Caption variants of the text slots (inherit), or [0] (contrast: each row's own draw).
    public let textVariants: [Int]
    public let slots: Int
    public let gradSlots: Int
    let rows: Range<Int>
    let rankRows: [Range<Int>]

    let text: TextAdaptor
    let head: ImageHead?

    /// Inputs the data loader fills. llm: (text slots, rows, D_llm); clipText: (text slots, rows,
    /// E), inherit only; image: (rows, E), contrast only.
    public let llmInput: Slab
    public let clipTextInput: Slab
    public let imageInput: Slab

    /// This worker's features, (slots, rows, E): what it contributes to the all-gather.
    public let local: Slab
    /// Gathered global features, (slots, B, E), and their gradients, (gradSlots, B, E).
    let global: Slab
    let dGlobal: Slab
    /// Feature gradients packed rank after rank for the reduce-scatter: rank r's block is
    /// (gradSlots, rows_r, E).
    public let packed: Slab
    let lossScratch: Slab

    public init(layout: ParameterLayout, settings: LossSettings, ownership: Ownership) {
        let s = layout.shape
        let E = s.dEmbed
        self.layout = layout
        self.settings = settings
        own = ownership
        rows = ownership.rows
        rankRows = ownership.allRows
        textVariants = settings.textVariants
        let nText = textVariants.count
        let m = rows.count, B = ownership.batch
        switch settings.kind {
        case .inherit:
            slots = 2 * nText
            gradSlots = nText
            head = nil
            clipTextInput = Slab(count: nText * m * E)
            imageInput = Slab(count: 0)
        case .contrast:
            slots = 3
            gradSlots = 2
            head = ImageHead(layout: layout, maxRows: m)
            clipTextInput = Slab(count: 0)
            imageInput = Slab(count: m * E)
        }
        text = TextAdaptor(layout: layout, maxRows: nText * m)
        llmInput = Slab(count: nText * m * s.dLLM)
        grads = Slab(count: layout.count)
        local = Slab(count: slots * m * E)
        global = Slab(count: slots * B * E)
        dGlobal = Slab(count: gradSlots * B * E)
        packed = Slab(count: gradSlots * B * E)
        let g = min(settings.group, max(B, 1))
        lossScratch = Slab(count: max(StructureLoss.scratchFloats(group: g), ContrastiveLoss.scratchFloats(rows: m, batch: B), nText * m))
    }

    /// Floats each rank contributes to the all-gather, in rank order.
    public var gatherCounts: [Int] { rankRows.map { slots * $0.count * layout.shape.dEmbed } }
    /// Floats each rank receives from the reduce-scatter, in rank order.
    public var scatterCounts: [Int] { rankRows.map { gradSlots * $0.count * layout.shape.dEmbed } }

    /// Stage 1: features of this worker's rows into `local`, from the inputs and `store`.
    public func forward(store: ParameterStore) {
        let E = layout.shape.dEmbed, m = rows.count
        let p = store.params.base
        switch settings.kind {
        case .inherit:
            let n = textVariants.count
            text.forward(out: local.base, e: llmInput.base, params: p, rows: n * m)
            let c = local.base + n * m * E
            L2Normalize.forward(out: c, norm: lossScratch.base, inp: clipTextInput.base, rows: n * m, cols: E)
        case .contrast:
            guard let head else { return }
            // Teacher first: it uses the head's buffers as scratch.
            head.forward(out: local.base + 2 * m * E, v: imageInput.base, base: store.ema.base, shift: store.emaShift, rows: m)
            text.forward(out: local.base, e: llmInput.base, params: p, rows: m)
            head.forward(out: local.base + m * E, v: imageInput.base, base: p, rows: m)
        }
    }

    /// Stage 3: loss terms this worker owns, from `gathered` (every rank's `local`, rank after
    /// rank). Fills `packed` with d loss / d features for every rank's rows, and writes this
    /// worker's part of d loss / d(log s) (contrast) into `grads`.
    public func losses(gathered: UnsafePointer<Float>, store: ParameterStore) -> LossTerms {
        let E = layout.shape.dEmbed, B = own.batch
        unpack(gathered)
        dGlobal.zero()
        var terms = LossTerms()
        let s = settings
        let scratch = lossScratch.base
        switch s.kind {
        case .inherit:
            let n = textVariants.count
            let groups = own.groups(size: s.group)
            for (k, v) in textVariants.enumerated() {
                let t = global.base + k * B * E, c = global.base + (n + k) * B * E
                let dt = dGlobal.base + k * B * E
                if s.insVariants.contains(v) {
                    terms.ins += InstanceLoss.apply(a: t, b: c, dim: E, rows: rows, weight: s.wIns, da: dt)
                }
                if s.strVariants.contains(v) {
                    terms.str += StructureLoss.apply(a: t, b: c, batch: B, dim: E, group: s.group, groups: groups,
                                                     weight: s.wStr, da: dt, scratch: scratch)
                }
            }
            terms.total = Double(s.wIns) * terms.ins + Double(s.wStr) * terms.str
        case .contrast:
            let t = global.base, u = global.base + B * E, teacher = global.base + 2 * B * E
            let dt = dGlobal.base, du = dGlobal.base + B * E
            let logScale = store.params.base[layout.logitScale]
            let (clip, dls) = ContrastiveLoss.apply(u: u, t: t, batch: B, dim: E, logScale: logScale, rows: rows,
                                                    du: du, dt: dt, scratch: scratch)
            terms.clip = clip
            terms.sdIns = InstanceLoss.apply(a: u, b: teacher, dim: E, rows: rows, weight: s.lambda, da: du)
            terms.sdStr = StructureLoss.apply(a: u, b: teacher, batch: B, dim: E, group: s.group,
                                              groups: own.groups(size: s.group), weight: s.lambda, da: du, scratch: scratch)
            terms.total = clip + Double(s.lambda) * (terms.sdIns + terms.sdStr)
            grads.base[layout.logitScale] = Float(dls)
        }
        pack()
        return terms
    }

    /// Stage 5: parameter gradients of this worker's rows from `dLocal`, the summed gradient of
    /// its features, (gradSlots, rows, E). Writes every gradient of the phase's computed parts.
    public func backward(dLocal: UnsafePointer<Float>, store: ParameterStore) {
        let E = layout.shape.dEmbed, m = rows.count
        let p = store.params.base, g = grads.base
        switch settings.kind {
        case .inherit:
            text.backward(dt: dLocal, out: local.base, params: p, grads: g, rows: textVariants.count * m)
        case .contrast:
            text.backward(dt: dLocal, out: local.base, params: p, grads: g, rows: m)
            head?.backward(du: dLocal + m * E, out: local.base + m * E, params: p, grads: g, rows: m)
        }
    }

    /// The groups whose gradients this phase computes (and so all-reduces).
    public var computedGroups: GroupSet { settings.kind == .inherit ? .text : .all }

    /// This worker's block of `packed` (its own rows' feature gradients) when it is the only worker.
    public var packedOwnBlock: UnsafePointer<Float> { UnsafePointer(packed.base) }

    /// Rank-after-rank `gathered` → (slots, B, E) `global`.
    private func unpack(_ gathered: UnsafePointer<Float>) {
        let E = layout.shape.dEmbed, B = own.batch
        var src = gathered
        for r in rankRows {
            for k in 0..<slots {
                (global.base + (k * B + r.lowerBound) * E).update(from: src, count: r.count * E)
                src += r.count * E
            }
        }
    }

    /// (gradSlots, B, E) `dGlobal` → rank-after-rank `packed`.
    private func pack() {
        let E = layout.shape.dEmbed, B = own.batch
        var dst = packed.base
        for r in rankRows {
            for k in 0..<gradSlots {
                dst.update(from: dGlobal.base + (k * B + r.lowerBound) * E, count: r.count * E)
                dst += r.count * E
            }
        }
    }
}

extension StepEngine {
    /// Slot `k` of the gathered global features, (B, E), valid after `losses`.
    public func globalFeatures(slot k: Int) -> UnsafeBufferPointer<Float> {
        let n = own.batch * layout.shape.dEmbed
        return UnsafeBufferPointer(start: global.base + k * n, count: n)
    }
}
