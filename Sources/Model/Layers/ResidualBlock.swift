import Tensors

/// Pointers to one residual block's six tensors inside a slab (parameters, gradients or the EMA
/// copy; all share the layout's offsets, shifted by `shift` for a slab that starts mid-layout).
public struct BlockView {
    public let lnWeight, lnBias, w1, b1, w2, b2: UnsafeMutablePointer<Float>
    public let dim, hidden: Int

    public init(_ o: BlockOffsets, in base: UnsafeMutablePointer<Float>, shift: Int = 0) {
        lnWeight = base + (o.lnWeight - shift)
        lnBias = base + (o.lnBias - shift)
        w1 = base + (o.w1 - shift)
        b1 = base + (o.b1 - shift)
        w2 = base + (o.w2 - shift)
        b2 = base + (o.b2 - shift)
        dim = o.dim
        hidden = o.hidden
    }
}

/// What a block's forward keeps for its backward, for up to `rows` rows.
public struct BlockSaved {
    /// LayerNorm output (N, D), its mean and rstd (N), the pre-activation h (N, H), Φ(h) (N, H),
    /// GELU(h) (N, H).
    public let ln, mean, rstd, h, cdf, a: UnsafeMutablePointer<Float>

    /// Carves the buffers from `arena`.
    init(arena: inout Arena, rows: Int, dim: Int, hidden: Int) {
        ln = arena.take(rows * dim)
        mean = arena.take(rows)
        rstd = arena.take(rows)
        h = arena.take(rows * hidden)
        cdf = arena.take(rows * hidden)
        a = arena.take(rows * hidden)
    }

    /// Carves the buffers from the start of `slab`, which must hold `floats(rows:dim:hidden:)`.
    public init(in slab: Slab, rows: Int, dim: Int, hidden: Int) {
        precondition(slab.count >= BlockSaved.floats(rows: rows, dim: dim, hidden: hidden))
        var a = Arena(slab: slab)
        self.init(arena: &a, rows: rows, dim: dim, hidden: hidden)
    }

    /// Floats needed for `rows` rows.
    public static func floats(rows: Int, dim: Int, hidden: Int) -> Int {
        Arena.rounded(rows * dim) + 2 * Arena.rounded(rows) + 3 * Arena.rounded(rows * hidden)
    }
}

/// The ProCLIP `LinearBlock`: `x + W2·GELU(W1·LN(x) + b1) + b2` (dropout 0).
public enum ResidualBlock {
    /// xOut (N, D) <- xIn (N, D); fills `saved`.
    public static func forward(
        xOut: UnsafeMutablePointer<Float>, saved: BlockSaved, xIn: UnsafePointer<Float>, w: BlockView, rows: Int
    ) {
        let d = w.dim, hd = w.hidden
        LayerNorm.forward(out: saved.ln, mean: saved.mean, rstd: saved.rstd, inp: xIn,
                          weight: w.lnWeight, bias: w.lnBias, rows: rows, cols: d)
        Linear.forward(out: saved.h, inp: saved.ln, weight: w.w1, bias: nil, rows: rows, inFeatures: d, outFeatures: hd)
        GELU.biasForward(out: saved.a, cdf: saved.cdf, h: saved.h, bias: w.b1, rows: rows, cols: hd)
        // xOut = xIn + b2, then += a · W2ᵀ
        for i in 0..<rows {
            let src = xIn + i * d, dst = xOut + i * d
            for k in 0..<d { dst[k] = src[k] + w.b2[k] }
        }
        Linear.forward(out: xOut, inp: saved.a, weight: w.w2, bias: nil, rows: rows, inFeatures: hd, outFeatures: d, accumulate: true)
    }

    /// Backward. `dx (N, D)` holds d/d(xOut) on entry; when `needInputGrad` it holds d/d(xIn) on
    /// exit (the residual path plus the LayerNorm path). Writes every gradient of `g`.
    /// Scratch: dh (N, H), dln (N, D).
    public static func backward(
        dx: UnsafeMutablePointer<Float>, g: BlockView, saved: BlockSaved, xIn: UnsafePointer<Float>,
        w: BlockView, rows: Int, dh: UnsafeMutablePointer<Float>, dln: UnsafeMutablePointer<Float>,
        needInputGrad: Bool
    ) {
        let d = w.dim, hd = w.hidden
        Linear.backward(dinp: dh, dweight: g.w2, dbias: g.b2, dout: dx, inp: saved.a, weight: w.w2,
                        rows: rows, inFeatures: hd, outFeatures: d)
        GELU.backward(d: dh, dbias: g.b1, h: saved.h, cdf: saved.cdf, rows: rows, cols: hd)
        Linear.backward(dinp: dln, dweight: g.w1, dbias: nil, dout: dh, inp: saved.ln, weight: w.w1,
                        rows: rows, inFeatures: d, outFeatures: hd)
        LayerNorm.backward(dinp: needInputGrad ? dx : nil, dweight: g.lnWeight, dbias: g.lnBias,
                           dout: dln, inp: xIn, weight: w.lnWeight, mean: saved.mean, rstd: saved.rstd,
                           rows: rows, cols: d)
    }
}

/// Hands out 64-byte-aligned pieces of one slab, planned once.
struct Arena {
    let slab: Slab
    private var used = 0

    init(floats: Int) { slab = Slab(count: floats) }

    init(slab: Slab) { self.slab = slab }

    static func rounded(_ n: Int) -> Int { (n + 15) / 16 * 16 }

    mutating func take(_ n: Int) -> UnsafeMutablePointer<Float> {
        let p = slab.base + used
        used += Arena.rounded(n)
        precondition(used <= slab.count, "activation plan too small")
        return p
    }
}
