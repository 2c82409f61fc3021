import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// The exact GELU, `x·Φ(x) = ½·x·(1 + erf(x/√2))` (PyTorch `nn.GELU()`), fused with the bias
/// add that precedes it in a residual block.
public enum GELU {
    /// Adds `bias (H)` to `h (N, H)` in place, then writes `out (N, H) = gelu(h)` and
    /// `cdf (N, H) = Φ(h)`. `h` and `cdf` are kept for backward (so it needs no second erf).
    public static func biasForward(
        out: UnsafeMutablePointer<Float>, cdf: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>,
        bias: UnsafePointer<Float>, rows: Int, cols: Int
    ) {
        Parallel.forChunks(rows * cols, minPerThread: 1 << 14, align: cols, Forward(out: out, cdf: cdf, h: h, bias: bias, cols: cols))
    }

    /// Backward in place: `d (N, H)` holds d/d(out) on entry and d/d(h) on exit, using
    /// gelu'(x) = Φ(x) + x·φ(x). Writes `dbias (H)`, the column sums of d/d(h).
    public static func backward(
        d: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>,
        cdf: UnsafePointer<Float>, rows: Int, cols: Int
    ) {
        Parallel.forChunks(rows * cols, minPerThread: 1 << 14, align: cols, Backward(d: d, h: h, cdf: cdf))
        Vector.columnSums(d, rows: rows, cols: cols, into: dbias)
    }

    static let invSqrt2: Float = 0.707_106_781_186_547_5
    static let invSqrt2Pi: Float = 0.398_942_280_401_432_7

    struct Forward: ChunkJob {
        let out, cdf, h: UnsafeMutablePointer<Float>
        let bias: UnsafePointer<Float>
        let cols: Int

        func run(_ lo: Int, _ hi: Int) {
            var i = lo
            while i < hi {
                let x = h + i, y = out + i, p = cdf + i
                for j in 0..<cols {
                    let v = x[j] + bias[j]
                    let phi = 0.5 * (1 + erff(v * invSqrt2))
                    x[j] = v
                    p[j] = phi
                    y[j] = v * phi
                }
                i += cols
            }
        }
    }

    struct Backward: ChunkJob {
        let d: UnsafeMutablePointer<Float>
        let h, cdf: UnsafePointer<Float>

        func run(_ lo: Int, _ hi: Int) {
            for i in lo..<hi {
                let v = h[i]
                d[i] *= cdf[i] + v * (expf(-0.5 * v * v) * invSqrt2Pi)
            }
        }
    }
}
