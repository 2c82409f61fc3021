import Tensors

/// Row-wise L2 normalisation `n(x) = x / ‖x‖₂` (as `F.normalize`, whose eps 1e-12 only matters
/// for an all-zero row, which is mapped to zero here too).
public enum L2Normalize {
    /// out (N, C), norm (N) <- inp (N, C). `out` may equal `inp`.
    public static func forward(
        out: UnsafeMutablePointer<Float>, norm: UnsafeMutablePointer<Float>,
        inp: UnsafePointer<Float>, rows: Int, cols: Int
    ) {
        for i in 0..<rows {
            let x = inp + i * cols
            let y = out + i * cols
            let r = max(Vector.sumOfSquares(x, cols).squareRoot(), 1e-12)
            let s = 1 / r
            for k in 0..<cols { y[k] = x[k] * s }
            norm[i] = r
        }
    }

    /// Writes dinp (N, C) = (dout − out·⟨out, dout⟩) / norm, from dout (N, C), out (N, C), norm (N).
    /// `dinp` may equal `dout`.
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
        out: UnsafePointer<Float>, norm: UnsafePointer<Float>, rows: Int, cols: Int
    ) {
        for i in 0..<rows {
            let y = out + i * cols
            let dy = dout + i * cols
            let dx = dinp + i * cols
            let p = Vector.dot(y, dy, cols)
            let s = 1 / norm[i]
            for k in 0..<cols { dx[k] = (dy[k] - y[k] * p) * s }
        }
    }
}
