import Tensors

/// LayerNorm over the last dimension, eps 1e-5, with gain and bias (PyTorch `nn.LayerNorm`).
public enum LayerNorm {
    public static let eps: Float = 1e-5

    /// out (N, C), mean (N), rstd (N) <- inp (N, C), weight (C), bias (C).
    public static func forward(
        out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
        inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        rows: Int, cols: Int
    ) {
        Parallel.forChunks(rows, minPerThread: max(1, (1 << 15) / max(cols, 1)), align: 1) { lo, hi in
            for i in lo..<hi {
                let x = inp + i * cols
                let y = out + i * cols
                let m = Vector.sum(x, cols) / Float(cols)
                var acc = SIMD8<Float>()
                var j = 0
                let m8 = SIMD8<Float>(repeating: m)
                while j + 8 <= cols {
                    let d = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self) - m8
                    acc.addProduct(d, d)
                    j += 8
                }
                var v = acc.sum()
                while j < cols { let d = x[j] - m; v += d * d; j += 1 }
                let r = 1 / (v / Float(cols) + eps).squareRoot()
                for k in 0..<cols { y[k] = (x[k] - m) * r * weight[k] + bias[k] }
                mean[i] = m
                rstd[i] = r
            }
        }
    }

    /// Backward. Writes dweight (C) and dbias (C); `dinp` (N, C) is *accumulated into* (+=) when
    /// given, so a residual stream's gradient can flow through the same buffer.
    /// Inputs: dout (N, C), inp (N, C), weight (C), mean (N), rstd (N).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, cols: Int
    ) {
        for k in 0..<cols { dweight[k] = 0; dbias[k] = 0 }
        for i in 0..<rows {
            let x = inp + i * cols
            let dy = dout + i * cols
            let m = mean[i], r = rstd[i]
            for k in 0..<cols {
                let xh = (x[k] - m) * r
                dweight[k] += dy[k] * xh
                dbias[k] += dy[k]
            }
        }
        guard let dinp else { return }
        Parallel.forChunks(rows, minPerThread: max(1, (1 << 15) / max(cols, 1)), align: 1) { lo, hi in
            for i in lo..<hi {
                let x = inp + i * cols
                let dy = dout + i * cols
                let dx = dinp + i * cols
                let m = mean[i], r = rstd[i]
                // dxh = dy·w; dx = r·(dxh − mean(dxh) − xh·mean(dxh·xh))
                var s1 = SIMD8<Float>(), s2 = SIMD8<Float>()
                var k = 0
                let m8 = SIMD8<Float>(repeating: m), r8 = SIMD8<Float>(repeating: r)
                while k + 8 <= cols {
                    let g = UnsafeRawPointer(dy + k).loadUnaligned(as: SIMD8<Float>.self)
                        * UnsafeRawPointer(weight + k).loadUnaligned(as: SIMD8<Float>.self)
                    let xh = (UnsafeRawPointer(x + k).loadUnaligned(as: SIMD8<Float>.self) - m8) * r8
                    s1 += g
                    s2.addProduct(g, xh)
                    k += 8
                }
                var a = s1.sum(), b = s2.sum()
                while k < cols {
                    let g = dy[k] * weight[k]
                    a += g
                    b += g * (x[k] - m) * r
                    k += 1
                }
                a /= Float(cols)
                b /= Float(cols)
                for k in 0..<cols {
                    let xh = (x[k] - m) * r
                    dx[k] += r * (dy[k] * weight[k] - a - xh * b)
                }
            }
        }
    }
}
