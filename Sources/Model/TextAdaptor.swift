import Tensors

/// ProCLIP's text adaptor (`TextProj`) with its activations for up to `maxRows` rows:
/// `x0 = n(e)`, L residual blocks, `y = Wo·LN_f(x_L) + bo`, text feature `t = n(y)`.
public final class TextAdaptor {
    public let layout: ParameterLayout
    public let maxRows: Int
    private let arena: Arena
    // Activations (N = maxRows, D = d_llm, E = d_embed).
    private let stream: [UnsafeMutablePointer<Float>]  // x_0 … x_L, each (N, D)
    private let norm0: UnsafeMutablePointer<Float>     // ‖e‖ (N)
    private let saved: [BlockSaved]
    private let lnf, meanf, rstdf: UnsafeMutablePointer<Float>  // (N, D), (N), (N)
    private let normY: UnsafeMutablePointer<Float>     // ‖y‖ (N)
    // Backward scratch.
    private let dx, dln, dh, dy: UnsafeMutablePointer<Float>

    public init(layout: ParameterLayout, maxRows: Int) {
        let s = layout.shape
        let n = max(maxRows, 1), d = s.dLLM, e = s.dEmbed, h = s.textHidden, L = s.textBlocks
        let floats = (L + 1) * Arena.rounded(n * d) + 3 * Arena.rounded(n)
            + L * BlockSaved.floats(rows: n, dim: d, hidden: h)
            + Arena.rounded(n * d) + 2 * Arena.rounded(n)
            + 2 * Arena.rounded(n * d) + Arena.rounded(n * h) + Arena.rounded(n * e)
        var a = Arena(floats: floats)
        stream = (0...L).map { _ in a.take(n * d) }
        norm0 = a.take(n)
        saved = (0..<L).map { _ in BlockSaved(arena: &a, rows: n, dim: d, hidden: h) }
        lnf = a.take(n * d)
        meanf = a.take(n)
        rstdf = a.take(n)
        normY = a.take(n)
        dx = a.take(n * d)
        dln = a.take(n * d)
        dh = a.take(n * h)
        dy = a.take(n * e)
        arena = a
        self.layout = layout
        self.maxRows = n
    }

    /// out (N, E) = t <- e (N, D_llm), with parameters from the slab at `params`.
    /// `out` must stay untouched until `backward` (it is the saved normalised output).
    public func forward(out: UnsafeMutablePointer<Float>, e: UnsafePointer<Float>, params: UnsafeMutablePointer<Float>, rows: Int) {
        precondition(rows <= maxRows)
        let s = layout.shape, d = s.dLLM, E = s.dEmbed
        L2Normalize.forward(out: stream[0], norm: norm0, inp: e, rows: rows, cols: d)
        for (l, o) in layout.textBlocks.enumerated() {
            ResidualBlock.forward(xOut: stream[l + 1], saved: saved[l], xIn: stream[l], w: BlockView(o, in: params), rows: rows)
        }
        LayerNorm.forward(out: lnf, mean: meanf, rstd: rstdf, inp: stream[s.textBlocks],
                          weight: params + layout.textFinalLN.weight, bias: params + layout.textFinalLN.bias,
                          rows: rows, cols: d)
        Linear.forward(out: out, inp: lnf, weight: params + layout.textProjection.weight,
                       bias: params + layout.textProjection.bias, rows: rows, inFeatures: d, outFeatures: E)
        L2Normalize.forward(out: out, norm: normY, inp: out, rows: rows, cols: E)
    }

    /// Backward from dt (N, E) given the `out` of the matching forward. Writes every text
    /// gradient in the slab at `grads` (no accumulation, no zeroing needed), telling `ready` each
    /// slab range as soon as it is final (`layout.textOutputRange`, then the blocks from last to
    /// first) so its all-reduce can start while the rest runs.
    public func backward(dt: UnsafePointer<Float>, out: UnsafePointer<Float>,
                         params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>, rows: Int,
                         ready: GradientsReady? = nil) {
        let s = layout.shape, d = s.dLLM, E = s.dEmbed
        L2Normalize.backward(dinp: dy, dout: dt, out: out, norm: normY, rows: rows, cols: E)
        Linear.backward(dinp: dln, dweight: grads + layout.textProjection.weight, dbias: grads + layout.textProjection.bias,
                        dout: dy, inp: lnf, weight: params + layout.textProjection.weight,
                        rows: rows, inFeatures: d, outFeatures: E)
        let L = s.textBlocks
        if L > 0 { dx.update(repeating: 0, count: rows * d) }
        LayerNorm.backward(dinp: L > 0 ? dx : nil, dweight: grads + layout.textFinalLN.weight, dbias: grads + layout.textFinalLN.bias,
                           dout: dln, inp: stream[L], weight: params + layout.textFinalLN.weight,
                           mean: meanf, rstd: rstdf, rows: rows, cols: d)
        ready?.ready(layout.textOutputRange)
        for l in stride(from: L - 1, through: 0, by: -1) {
            let o = layout.textBlocks[l]
            ResidualBlock.backward(dx: dx, g: BlockView(o, in: grads), saved: saved[l], xIn: stream[l],
                                   w: BlockView(o, in: params), rows: rows, dh: dh, dln: dln, needInputGrad: l > 0)
            ready?.ready(layout.textBlockRanges[l])
        }
    }

    /// Multiply-adds of one forward over `rows` rows (×2 for FLOPs; backward is twice forward).
    public static func forwardMACs(_ s: ModelShape, rows: Int) -> Double {
        Double(rows) * (Double(s.textBlocks) * 2 * Double(s.dLLM) * Double(s.textHidden) + Double(s.dLLM) * Double(s.dEmbed))
    }
}

/// Told each slab range of gradients as backward finishes it.
public protocol GradientsReady: AnyObject {
    func ready(_ range: Range<Int>)
}
