import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// AdamW hyperparameters of a phase (DESIGN §2; defaults are the paper's).
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

    /// Global L2 norm of the gradients of `groups` (float64 accumulation, fixed order).
    public static func gradientNorm(_ grads: UnsafePointer<Float>, layout: ParameterLayout, groups: GroupSet) -> Double {
        var total = 0.0
        for e in layout.entries where groups.has(e.group) {
            total += Double(Vector.sumOfSquares(grads + e.offset, e.count))
        }
        return total.squareRoot()
    }

    /// One optimizer step `t` (1-based, counted within the phase) on the trainable `groups`, with
    /// learning-rate multiplier `lrFactor` from the schedule. Returns the gradient norm before
    /// clipping. Then clamps the logit scale and moves the EMA towards the head by `emaAlpha`.
    @discardableResult
    public static func step(
        store: ParameterStore, grads: UnsafePointer<Float>, groups: GroupSet,
        settings s: AdamWSettings, t: Int, lrFactor: Double, emaAlpha: Double
    ) -> Double {
        let layout = store.layout
        let norm = gradientNorm(grads, layout: layout, groups: groups)
        var gscale: Float = 1
        if let maxNorm = s.clipNorm, norm > maxNorm { gscale = Float(maxNorm / (norm + 1e-6)) }
        let bc1 = 1 - pow(s.beta1, Double(t))
        let bc2 = 1 - pow(s.beta2, Double(t))
        for e in layout.entries where groups.has(e.group) {
            let lr = (s.lr[e.group] ?? 0) * lrFactor
            update(p: store.params.base + e.offset, m: store.expAvg.base + e.offset, v: store.expAvgSq.base + e.offset,
                   g: grads + e.offset, count: e.count, gscale: gscale,
                   lr: Float(lr), decay: e.isMatrix ? Float(lr * s.weightDecay) : 0,
                   beta1: Float(s.beta1), beta2: Float(s.beta2), eps: Float(s.eps),
                   stepSize: Float(lr / bc1), rbc2: Float(1 / bc2.squareRoot()))
        }
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
        let n = store.ema.count
        for i in 0..<n { ema[i] = a * ema[i] + b * head[i] }
    }

    @inline(__always)
    static func update(
        p: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
        g: UnsafePointer<Float>, count: Int, gscale: Float, lr: Float, decay: Float,
        beta1: Float, beta2: Float, eps: Float, stepSize: Float, rbc2: Float
    ) {
        let keep = 1 - decay
        let c1 = 1 - beta1, c2 = 1 - beta2
        Parallel.forChunks(count, minPerThread: 1 << 16) { lo, hi in
            for i in lo..<hi {
                let gi = g[i] * gscale
                let mi = beta1 * m[i] + c1 * gi
                let vi = beta2 * v[i] + c2 * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] * keep - stepSize * mi / (vi.squareRoot() * rbc2 + eps)
            }
        }
    }
}
