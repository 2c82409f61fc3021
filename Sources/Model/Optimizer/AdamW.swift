import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// AdamW hyperparameters of a phase (docs/design.md §2; defaults are the paper's).
public struct AdamWSettings: Sendable, Equatable {
    /// Base learning rate per group (text, image, scale), before the schedule.
    public var lr: [ParameterGroup: Double]
    public var beta1: Double = 0.9
    public var beta2: Double = 0.98
    public var eps: Double = 1e-6
    /// Decoupled weight decay, applied to matrices only.
    public var weightDecay: Double = 0.05
    /// Clip the global gradient norm to this value (nil: no clipping).
    public var clipNorm: Double?

    public init(lr: [ParameterGroup: Double], beta1: Double = 0.9, beta2: Double = 0.98, eps: Double = 1e-6,
                weightDecay: Double = 0.05, clipNorm: Double? = nil) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.clipNorm = clipNorm
    }
}

/// AdamW with `torch.optim.AdamW` semantics, fused into one pass over each tensor:
/// `p ← p·(1 − lr·wd)` (matrices only), `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
/// `p ← p − (lr/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + eps)`; then the logit-scale clamp to [0, log 100] and
/// the EMA update of the image head's teacher.
public enum AdamW {
    /// The logit scale's upper bound, log 100.
    public static let maxLogScale = Float(log(100.0))

    /// Elements per block of the fused kernels: reductions are summed within a block, then over
    /// blocks in order, so the result does not depend on the thread count.
    static let block = 1 << 14

    /// Global L2 norm of the gradients of `groups` (deterministic: fixed blocks, fixed order).
    public static func gradientNorm(_ grads: UnsafePointer<Float>, layout: ParameterLayout, groups: GroupSet,
                                    partials: UnsafeMutablePointer<Double>) -> Double {
        var total = 0.0
        for e in layout.entries where groups.has(e.group) {
            Parallel.forBlocks(e.count, size: block, SquareSums(g: grads + e.offset, partials: partials))
            for b in 0..<((e.count + block - 1) / block) { total += partials[b] }
        }
        return total.squareRoot()
    }

    /// One optimizer step `t` (1-based, counted within the phase) on the trainable `groups`, with
    /// learning-rate multiplier `lrFactor` from the schedule; then the logit-scale clamp and the EMA
    /// update. Returns the global gradient norm before clipping. Without clipping the norm is
    /// summed inside the update pass (one pass over the state); with clipping it needs a pass of
    /// its own first. `scratch` provides the per-block partial sums (`scratchCount(layout)`).
    @discardableResult
    public static func step(
        store: ParameterStore, grads: UnsafePointer<Float>, groups: GroupSet,
        settings s: AdamWSettings, t: Int, lrFactor: Double, emaAlpha: Double, scratch: AdamWScratch
    ) -> Double {
        let layout = store.layout
        let partials = scratch.partials
        var gscale: Float = 1
        var norm = -1.0
        if let maxNorm = s.clipNorm {
            norm = gradientNorm(grads, layout: layout, groups: groups, partials: partials)
            if norm > maxNorm { gscale = Float(maxNorm / (norm + 1e-6)) }
        }
        let bc1 = 1 - pow(s.beta1, Double(t))
        let bc2 = 1 - pow(s.beta2, Double(t))
        var sumSq = 0.0
        for e in layout.entries where groups.has(e.group) {
            let lr = (s.lr[e.group] ?? 0) * lrFactor
            let k = Kernel(p: store.params.base + e.offset, m: store.expAvg.base + e.offset, v: store.expAvgSq.base + e.offset,
                           g: grads + e.offset, gscale: gscale, keep: Float(1 - (e.isMatrix ? lr * s.weightDecay : 0)),
                           beta1: Float(s.beta1), beta2: Float(s.beta2), eps: Float(s.eps),
                           stepSize: Float(lr / bc1), rbc2: Float(1 / bc2.squareRoot()))
            Parallel.forBlocks(e.count, size: block, Update(kernel: k, partials: partials))
            for b in 0..<((e.count + block - 1) / block) { sumSq += partials[b] }
        }
        if norm < 0 { norm = sumSq.squareRoot() }
        if groups.has(.scale) {
            let p = store.params.base + layout.logitScale
            p[0] = min(max(p[0], 0), maxLogScale)
        }
        updateEMA(store: store, alpha: emaAlpha)
        return norm
    }

    /// `ema ← α·ema + (1−α)·head` (skipped when α = 1: a frozen original teacher).
    public static func updateEMA(store: ParameterStore, alpha: Double) {
        if alpha >= 1 { return }
        let a = Float(alpha), b = Float(1 - alpha)
        let head = store.params.base + store.emaShift
        let ema = store.ema.base
        for i in 0..<store.ema.count { ema[i] = a * ema[i] + b * head[i] }
    }

    struct SquareSums: BlockJob {
        let g: UnsafePointer<Float>
        let partials: UnsafeMutablePointer<Double>
        func run(block b: Int, _ lo: Int, _ hi: Int) { partials[b] = Double(Vector.sumOfSquares(g + lo, hi - lo)) }
    }

    struct Update: BlockJob {
        let kernel: Kernel
        let partials: UnsafeMutablePointer<Double>
        func run(block b: Int, _ lo: Int, _ hi: Int) { partials[b] = kernel.run(lo, hi) }
    }

    /// The fused AdamW update of one tensor, eight lanes at a time. Returns Σ g² of the range
    /// (before clipping), for the gradient norm.
    struct Kernel {
        let p, m, v: UnsafeMutablePointer<Float>
        let g: UnsafePointer<Float>
        let gscale, keep, beta1, beta2, eps, stepSize, rbc2: Float

        @inline(__always)
        func run(_ lo: Int, _ hi: Int) -> Double {
            let b1 = SIMD8<Float>(repeating: beta1), c1 = SIMD8<Float>(repeating: 1 - beta1)
            let b2 = SIMD8<Float>(repeating: beta2), c2 = SIMD8<Float>(repeating: 1 - beta2)
            let gs = SIMD8<Float>(repeating: gscale), kp = SIMD8<Float>(repeating: keep)
            let st = SIMD8<Float>(repeating: stepSize), rb = SIMD8<Float>(repeating: rbc2), ep = SIMD8<Float>(repeating: eps)
            var acc = SIMD8<Float>()
            var i = lo
            while i + 8 <= hi {
                let graw = load8(g + i)
                acc += graw * graw
                let gi = graw * gs
                let mi = b1 * load8(m + i) + c1 * gi
                let vi = b2 * load8(v + i) + c2 * gi * gi
                store8(mi, m + i)
                store8(vi, v + i)
                store8(load8(p + i) * kp - st * mi / (vi.squareRoot() * rb + ep), p + i)
                i += 8
            }
            var tail: Float = 0
            while i < hi {
                let graw = g[i]
                tail += graw * graw
                let gi = graw * gscale
                let mi = beta1 * m[i] + (1 - beta1) * gi
                let vi = beta2 * v[i] + (1 - beta2) * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] * keep - stepSize * mi / (vi.squareRoot() * rbc2 + eps)
                i += 1
            }
            return Double(acc.sum() + tail)
        }
    }
}

/// Per-block partial sums for `AdamW.step`, allocated once for a layout.
public final class AdamWScratch {
    let partials: UnsafeMutablePointer<Double>
    let count: Int

    public init(layout: ParameterLayout) {
        count = max(1, (layout.entries.map(\.count).max() ?? 1) / AdamW.block + 1)
        partials = .allocate(capacity: count)
        partials.initialize(repeating: 0, count: count)
    }

    deinit { partials.deallocate() }
}
