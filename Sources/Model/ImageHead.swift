import Tensors

/// The image head with its activations for up to `maxRows` rows: residual blocks on the frozen
/// CLIP image embedding `v`, then `u = n(head(v))`. No final LayerNorm or projection. Its second
/// Linear of every block starts at zero, so a fresh head is the identity and `u = n(v)`.
///
/// The same object also runs the EMA teacher (`forwardOnly` with the EMA slab), using its
/// buffers as scratch: run the teacher before the student's forward.
public final class ImageHead {
    public let layout: ParameterLayout
    public let maxRows: Int
    private let arena: Arena
    private let stream: [UnsafeMutablePointer<Float>]  // x_1 … x_L (x_0 is the caller's v), each (N, E)
    private let saved: [BlockSaved]
    private let normU: UnsafeMutablePointer<Float>
    private let dx, dln, dh: UnsafeMutablePointer<Float>
    private var input: UnsafePointer<Float>?

    public init(layout: ParameterLayout, maxRows: Int) {
        let s = layout.shape
        let n = max(maxRows, 1), e = s.dEmbed, h = s.imageHidden, L = s.imageBlocks
        let floats = L * Arena.rounded(n * e) + L * BlockSaved.floats(rows: n, dim: e, hidden: h)
            + Arena.rounded(n) + 2 * Arena.rounded(n * e) + Arena.rounded(n * h)
        var a = Arena(floats: floats)
        stream = (0..<L).map { _ in a.take(n * e) }
        saved = (0..<L).map { _ in BlockSaved(arena: &a, rows: n, dim: e, hidden: h) }
        normU = a.take(n)
        dx = a.take(n * e)
        dln = a.take(n * e)
        dh = a.take(n * h)
        arena = a
        self.layout = layout
        self.maxRows = n
    }

    /// out (N, E) = u <- v (N, E), with the head's parameters at `base` (a slab with the
    /// layout's offsets shifted by `shift`: 0 for the parameter slab, the image group's start
    /// for the EMA slab). `v` and `out` must stay untouched until `backward`.
    public func forward(out: UnsafeMutablePointer<Float>, v: UnsafePointer<Float>,
                        base: UnsafeMutablePointer<Float>, shift: Int = 0, rows: Int) {
        precondition(rows <= maxRows)
        input = v
        var x = v
        for (l, o) in layout.imageBlocks.enumerated() {
            ResidualBlock.forward(xOut: stream[l], saved: saved[l], xIn: x, w: BlockView(o, in: base, shift: shift), rows: rows)
            x = UnsafePointer(stream[l])
        }
        L2Normalize.forward(out: out, norm: normU, inp: x, rows: rows, cols: layout.shape.dEmbed)
    }

    /// Backward from du (N, E) given the `out` of the matching forward with the parameter slab.
    /// Writes every image-head gradient in the slab at `grads`.
    /// `ready` is told each block's slab range as soon as it is final, last block first.
    public func backward(du: UnsafePointer<Float>, out: UnsafePointer<Float>,
                         params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>, rows: Int,
                         ready: GradientsReady? = nil) {
        guard let v = input else { preconditionFailure("ImageHead.backward before forward") }
        let e = layout.shape.dEmbed
        L2Normalize.backward(dinp: dx, dout: du, out: out, norm: normU, rows: rows, cols: e)
        for l in stride(from: layout.imageBlocks.count - 1, through: 0, by: -1) {
            let o = layout.imageBlocks[l]
            ResidualBlock.backward(dx: dx, g: BlockView(o, in: grads), saved: saved[l],
                                   xIn: l == 0 ? v : UnsafePointer(stream[l - 1]),
                                   w: BlockView(o, in: params), rows: rows, dh: dh, dln: dln, needInputGrad: l > 0)
            ready?.ready(layout.imageBlockRanges[l])
        }
    }

    /// Multiply-adds of one forward over `rows` rows.
    public static func forwardMACs(_ s: ModelShape, rows: Int) -> Double {
        Double(rows) * Double(s.imageBlocks) * 2 * Double(s.dEmbed) * Double(s.imageHidden)
    }
}
