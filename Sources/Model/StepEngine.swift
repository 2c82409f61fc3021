import Tensors

/// One worker's part of a training step, with every buffer planned once for a phase's shapes.
/// The caller runs the collectives between the stages:
///
/// 1. `forward` — the worker's rows to features, written to `local` (slots × rows × E);
/// 2. all-gather `local` of every rank, rank after rank;
/// 3. `prepare(gathered:)` — unpacks the global features; in a contrast phase also computes the
///    worker's rows of the logit matrices and their log-sum-exps into `stats`;
/// 4. all-gather `stats` (4 floats per row of the batch; contrast only, `statsCounts`);
/// 5. `losses(gatheredStats:)` — the owned loss terms, and the gradient of the *whole* loss with
///    respect to the worker's own features (`dLocal`); writes its part of d loss / d(log s);
/// 6. `backward` — its rows' feature gradients to parameter gradients in `grads`;
/// 7. all-reduce `grads` over the phase's computed span; identical optimizer step everywhere.
///
/// Each row's feature gradient is computed entirely by the row's owner (see the losses), so the
/// feature-gradient reduce-scatter of a plain decomposition is not needed: stage 4 exchanges 4B
/// floats instead of B·E per feature slot, and a row's gradient does not depend on the split.
/// The loss side (O(B²·E) against the model's O(B·D·H)) runs in float64 on the gathered
/// features, so its sums do not depend on the split either; the log-sum-exps travel as
/// float32 pairs (high part, remainder) that rebuild the float64 values exactly enough.
///
/// Feature slots: inherit — text for each computed caption variant, then the normalised CLIP
/// text for each (no gradient); contrast — text, image, EMA teacher (no gradient). Gradients
/// exist for the first `gradSlots` slots. A steady-state step allocates nothing.
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

    /// This worker's features, (slots, rows, E): what it contributes to the first all-gather.
    public let local: Slab
    /// This worker's log-sum-exps as float pairs, (4, rows): its part of the second all-gather.
    public let stats: Slab
    /// Gathered global features in float64, (slots, B, E); every row's log-sum-exps, (2, B).
    let global: Slab64
    let ownStats: Slab64
    let globalStats: Slab64
    /// d loss / d (own features), (gradSlots, rows, E), in float64 and as passed to backward.
    let dLocal64: Slab64
    public let dLocal: Slab
    let lossScratch: Slab64
    let normScratch: Slab

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
        let contrast = settings.kind == .contrast
        slots = contrast ? 3 : 2 * nText
        gradSlots = contrast ? 2 : nText
        head = contrast ? ImageHead(layout: layout, maxRows: m) : nil
        clipTextInput = Slab(count: contrast ? 0 : nText * m * E)
        imageInput = Slab(count: contrast ? m * E : 0)
        text = TextAdaptor(layout: layout, maxRows: nText * m)
        llmInput = Slab(count: nText * m * s.dLLM)
        grads = Slab(count: layout.count)
        local = Slab(count: slots * m * E)
        stats = Slab(count: contrast ? 4 * m : 0)
        global = Slab64(count: slots * B * E)
        ownStats = Slab64(count: contrast ? 2 * m : 0)
        globalStats = Slab64(count: contrast ? 2 * B : 0)
        dLocal64 = Slab64(count: gradSlots * m * E)
        dLocal = Slab(count: gradSlots * m * E)
        lossScratch = Slab64(count: max(StructureLoss.scratchCount(group: settings.group, rows: m),
                                        contrast ? ContrastiveLoss.scratchCount(rows: m, batch: B) : 0))
        normScratch = Slab(count: nText * m)
    }

    /// Floats each rank contributes to the feature all-gather, in rank order.
    public var gatherCounts: [Int] { rankRows.map { slots * $0.count * layout.shape.dEmbed } }
    /// Floats each rank contributes to the statistics all-gather (empty counts: no exchange).
    public var statsCounts: [Int] { rankRows.map { settings.kind == .contrast ? 4 * $0.count : 0 } }

    /// Stage 1: features of this worker's rows into `local`, from the inputs and `store`.
    public func forward(store: ParameterStore) {
        let E = layout.shape.dEmbed, m = rows.count
        let p = store.params.base
        switch settings.kind {
        case .inherit:
            let n = textVariants.count
            text.forward(out: local.base, e: llmInput.base, params: p, rows: n * m)
            let c = local.base + n * m * E
            L2Normalize.forward(out: c, norm: normScratch.base, inp: clipTextInput.base, rows: n * m, cols: E)
        case .contrast:
            guard let head else { return }
            // Teacher first: it uses the head's buffers as scratch.
            head.forward(out: local.base + 2 * m * E, v: imageInput.base, base: store.ema.base, shift: store.emaShift, rows: m)
            text.forward(out: local.base, e: llmInput.base, params: p, rows: m)
            head.forward(out: local.base + m * E, v: imageInput.base, base: p, rows: m)
        }
    }

    /// Stage 3: takes the all-gathered features (every rank's `local`, rank after rank) and, in a
    /// contrast phase, fills `stats` with the log-sum-exps of this worker's logit rows.
    public func prepare(gathered: UnsafePointer<Float>, store: ParameterStore) {
        let E = layout.shape.dEmbed, B = own.batch
        var src = gathered
        for r in rankRows {
            for k in 0..<slots {
                let dst = global.base + (k * B + r.lowerBound) * E
                for i in 0..<(r.count * E) { dst[i] = Double(src[i]) }
                src += r.count * E
            }
        }
        if settings.kind == .contrast {
            let m = rows.count
            ContrastiveLoss.logits(u: global.base + B * E, t: global.base, batch: B, dim: E,
                                   logScale: Double(store.params.base[layout.logitScale]), rows: rows,
                                   lse: ownStats.base, scratch: lossScratch.base)
            // Each float64 as two floats: the nearest float and the remainder.
            for k in 0..<(2 * m) {
                let x = ownStats.base[k]
                let hi = Float(x)
                stats.base[2 * m * (k / m) + k % m] = hi
                stats.base[2 * m * (k / m) + m + k % m] = Float(x - Double(hi))
            }
        }
    }

    /// Stage 5: the loss terms this worker owns, and d loss / d(own features) into `dLocal`.
    /// `gatheredStats`: every rank's `stats`, rank after rank (ignored in an inherit phase).
    public func losses(gatheredStats: UnsafePointer<Float>?, store: ParameterStore) -> LossTerms {
        let E = layout.shape.dEmbed, B = own.batch, m = rows.count, r0 = rows.lowerBound
        dLocal64.zero()
        var terms = LossTerms()
        let s = settings
        let scratch = lossScratch.base
        switch s.kind {
        case .inherit:
            let n = textVariants.count
            for (k, v) in textVariants.enumerated() {
                let t = global.base + k * B * E, c = global.base + (n + k) * B * E
                let dt = dLocal64.base + k * m * E
                if s.insVariants.contains(v) {
                    terms.ins += InstanceLoss.apply(a: t + r0 * E, b: c + r0 * E, rows: m, dim: E, weight: Double(s.wIns), da: dt)
                }
                if s.strVariants.contains(v) {
                    terms.str += StructureLoss.apply(a: t, b: c, batch: B, dim: E, group: s.group, rows: rows,
                                                     weight: Double(s.wStr), da: dt, scratch: scratch)
                }
            }
            terms.total = Double(s.wIns) * terms.ins + Double(s.wStr) * terms.str
        case .contrast:
            guard let gatheredStats else { preconditionFailure("a contrast step needs the gathered statistics") }
            var src = gatheredStats
            for r in rankRows {
                let n = r.count
                for k in 0..<n {
                    globalStats.base[r.lowerBound + k] = Double(src[k]) + Double(src[n + k])
                    globalStats.base[B + r.lowerBound + k] = Double(src[2 * n + k]) + Double(src[3 * n + k])
                }
                src += 4 * n
            }
            let t = global.base, u = global.base + B * E, teacher = global.base + 2 * B * E
            let dt = dLocal64.base, du = dLocal64.base + m * E
            let lambda = Double(s.lambda)
            let (clip, dls) = ContrastiveLoss.apply(
                u: u, t: t, batch: B, dim: E, logScale: Double(store.params.base[layout.logitScale]), rows: rows,
                lseM: globalStats.base, lseMT: globalStats.base + B, du: du, dt: dt, scratch: scratch)
            terms.clip = clip
            terms.sdIns = InstanceLoss.apply(a: u + r0 * E, b: teacher + r0 * E, rows: m, dim: E, weight: lambda, da: du)
            terms.sdStr = StructureLoss.apply(a: u, b: teacher, batch: B, dim: E, group: s.group, rows: rows,
                                              weight: lambda, da: du, scratch: scratch)
            terms.total = clip + Double(s.lambda) * (terms.sdIns + terms.sdStr)
            grads.base[layout.logitScale] = Float(dls)
        }
        for i in 0..<dLocal.count { dLocal.base[i] = Float(dLocal64.base[i]) }
        return terms
    }

    /// Stage 6: parameter gradients of this worker's rows from `dLocal`. Writes every gradient of
    /// the phase's computed groups (the logit scale's in `losses`). `ready`, when given, is told
    /// every slab range of the computed span as soon as it is final — the logit scale's first
    /// (contrast), then in the order backward finishes them — and together they cover the span.
    public func backward(store: ParameterStore, ready: GradientsReady? = nil) {
        let E = layout.shape.dEmbed, m = rows.count
        let p = store.params.base, g = grads.base
        switch settings.kind {
        case .inherit:
            text.backward(dt: dLocal.base, out: local.base, params: p, grads: g, rows: textVariants.count * m, ready: ready)
        case .contrast:
            ready?.ready(layout.range(of: .scale))
            text.backward(dt: dLocal.base, out: local.base, params: p, grads: g, rows: m, ready: ready)
            head?.backward(du: dLocal.base + m * E, out: local.base + m * E, params: p, grads: g, rows: m, ready: ready)
        }
    }

    /// The groups whose gradients this phase computes (and so all-reduces).
    public var computedGroups: GroupSet { settings.kind == .inherit ? .text : .all }

    /// Slot `k` of the gathered global features, (B, E), valid after `prepare` (a copy).
    public func globalFeatures(slot k: Int) -> [Float] {
        let n = own.batch * layout.shape.dEmbed
        return (0..<n).map { Float(global.base[k * n + $0]) }
    }
}
