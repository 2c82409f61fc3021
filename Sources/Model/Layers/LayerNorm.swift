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
        Parallel.forChunks(rows, minPerThread: max(1, (1 << 15) / max(cols, 1)), align: 1,
                           Forward(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias, cols: cols))
    }

    /// Backward. Writes dweight (C) and dbias (C); `dinp` (N, C) is *accumulated into* (+=) when
    /// given, so a residual stream's gradient can flow through the same buffer.
    /// Inputs: dout (N, C), inp (N, C), weight (C), mean (N), rstd (N).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, cols: Int
    ) {
        Parallel.forChunks(cols, minPerThread: 512, align: Vector.columnTile,
                           ParameterGradient(dweight: dweight, dbias: dbias, dout: dout, inp: inp, mean: mean, rstd: rstd,
                                             rows: rows, cols: cols))
        guard let dinp else { return }
        Parallel.forChunks(rows, minPerThread: max(1, (1 << 15) / max(cols, 1)), align: 1,
                           InputGradient(dinp: dinp, dout: dout, inp: inp, weight: weight, mean: mean, rstd: rstd, cols: cols))
    }

    struct Forward: ChunkJob {
        let out, mean, rstd: UnsafeMutablePointer<Float>
        let inp, weight, bias: UnsafePointer<Float>
        let cols: Int

        func run(_ lo: Int, _ hi: Int) {
            for i in lo..<hi {
                let x = inp + i * cols
                let y = out + i * cols
                let m = Vector.sum(x, cols) / Float(cols)
                var acc = SIMD8<Float>()
                var j = 0
                let m8 = SIMD8<Float>(repeating: m)
                while j + 8 <= cols {
                    let d = load8(x + j) - m8
                    acc += d * d
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

    /// dweight[k] = Σ_i dy[i,k]·xh[i,k], dbias[k] = Σ_i dy[i,k], in float64, a tile of columns at a time.
    struct ParameterGradient: ChunkJob {
        let dweight, dbias: UnsafeMutablePointer<Float>
        let dout, inp, mean, rstd: UnsafePointer<Float>
        let rows, cols: Int

        func run(_ lo: Int, _ hi: Int) {
            let tile = Vector.columnTile
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * tile) { acc in
                var c0 = lo
                while c0 < hi {
                    let n = min(tile, hi - c0)
                    for j in 0..<n { acc[j] = 0; acc[tile + j] = 0 }
                    for i in 0..<rows {
                        let x = inp + i * cols + c0, dy = dout + i * cols + c0
                        let m = mean[i], r = rstd[i]
                        for j in 0..<n {
                            acc[j] += Double(dy[j] * ((x[j] - m) * r))
                            acc[tile + j] += Double(dy[j])
                        }
                    }
                    for j in 0..<n {
                        dweight[c0 + j] = Float(acc[j])
                        dbias[c0 + j] = Float(acc[tile + j])
                    }
                    c0 += n
                }
            }
        }
    }

    /// dx += r·(dxh − mean(dxh) − xh·mean(dxh·xh)), with dxh = dy·w.
    struct InputGradient: ChunkJob {
        let dinp: UnsafeMutablePointer<Float>
        let dout, inp, weight, mean, rstd: UnsafePointer<Float>
        let cols: Int

        func run(_ lo: Int, _ hi: Int) {
            for i in lo..<hi {
                let x = inp + i * cols
                let dy = dout + i * cols
                let dx = dinp + i * cols
                let m = mean[i], r = rstd[i]
                var s1 = SIMD8<Float>(), s2 = SIMD8<Float>()
                var k = 0
                let m8 = SIMD8<Float>(repeating: m), r8 = SIMD8<Float>(repeating: r)
                while k + 8 <= cols {
                    let g = load8(dy + k) * load8(weight + k)
                    let xh = (load8(x + k) - m8) * r8
                    s1 += g
                    s2 += g * xh
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
