import Tensors

/// Embedding structure alignment over groups of G consecutive rows of the global batch:
/// `L_str(a, b) = Σ_groups Σ_{i<j} smoothL1_β=1(‖a_i − a_j‖ − ‖b_i − b_j‖)` (reduction sum, as the
/// official `pdist` + `smooth_l1_loss`). Group g covers rows `[gG, min((g+1)G, B))`; the last
/// group is shorter when G does not divide B.
///
/// A worker evaluates the rows it owns: every pair (i, j) of a group with i < j and i its own is
/// counted in its loss (so each pair is counted once over all workers), and it computes the full
/// gradient of the loss with respect to its own rows, `∂L/∂a_i = Σ_j w_ij (a_i − a_j)` with
/// `w_ij = smoothL1'(δ_ij) / ‖a_i − a_j‖`, from the gathered features of the whole group. No other
/// worker contributes to a row's gradient.
///
/// Float64 throughout. Distances come from Gram rows (one GEMM per group),
/// `‖a_i−a_j‖² = ‖a_i‖² + ‖a_j‖² − 2a_i·a_j`; a pair whose squared distance is small against its
/// norms is recomputed directly from the difference. At coincident points (distance 0) the
/// distance's gradient is taken as 0, as `torch.pdist` does: finite, never NaN.
public enum StructureLoss {
    /// Doubles of scratch needed for groups of up to `group` rows, `rows` of them owned.
    public static func scratchCount(group: Int, rows: Int) -> Int {
        let m = min(group, max(rows, 1))
        return 3 * m * group + 2 * group + m
    }

    /// Returns the owned loss (pairs i < j with i in `rows`) of a (B, E) against the teacher
    /// b (B, E), and adds `weight · ∂L/∂a_i` for the owned rows i to da (rows.count, E).
    public static func apply(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, batch: Int, dim: Int, group: Int,
        rows: Range<Int>, weight: Double, da: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>
    ) -> Double {
        if rows.isEmpty { return 0 }
        var total = 0.0
        let maxOwn = min(group, rows.count)
        let ga = scratch, gb = scratch + maxOwn * group, w = scratch + 2 * maxOwn * group
        let sqA = scratch + 3 * maxOwn * group, sqB = sqA + group, rowW = sqB + group
        var g0 = rows.lowerBound / group * group
        while g0 < rows.upperBound {
            let g1 = min(g0 + group, batch)
            let n = g1 - g0
            let o0 = max(g0, rows.lowerBound), o1 = min(g1, rows.upperBound)
            let m = o1 - o0
            let A = a + g0 * dim, Bm = b + g0 * dim
            BLAS.dgemm(transA: false, transB: true, m: m, n: n, k: dim, a: a + o0 * dim, lda: dim, b: A, ldb: dim, c: ga, ldc: n)
            BLAS.dgemm(transA: false, transB: true, m: m, n: n, k: dim, a: b + o0 * dim, lda: dim, b: Bm, ldb: dim, c: gb, ldc: n)
            for j in 0..<n {
                sqA[j] = squaredNorm(A + j * dim, dim)
                sqB[j] = squaredNorm(Bm + j * dim, dim)
            }
            for r in 0..<m {
                let i = o0 - g0 + r
                var sumW = 0.0
                for j in 0..<n {
                    if j == i {
                        w[r * n + j] = 0
                        continue
                    }
                    let dA = distance(ga[r * n + j], sqA[i], sqA[j], A + i * dim, A + j * dim, dim)
                    let dB = distance(gb[r * n + j], sqB[i], sqB[j], Bm + i * dim, Bm + j * dim, dim)
                    let delta = dA - dB
                    let slope: Double
                    if abs(delta) < 1 {
                        if j > i { total += 0.5 * delta * delta }
                        slope = delta
                    } else {
                        if j > i { total += abs(delta) - 0.5 }
                        slope = delta > 0 ? 1 : -1
                    }
                    let wij = dA > 0 ? slope / dA * weight : 0
                    w[r * n + j] = wij
                    sumW += wij
                }
                rowW[r] = sumW
            }
            // dA_own += diag(Σ_j w)·A_own − W·A_group
            let dOwn = da + (o0 - rows.lowerBound) * dim
            BLAS.dgemm(transA: false, transB: false, m: m, n: dim, k: n, alpha: -1, a: w, lda: n, b: A, ldb: dim,
                       beta: 1, c: dOwn, ldc: dim)
            for r in 0..<m {
                let x = a + (o0 + r) * dim, y = dOwn + r * dim
                for k in 0..<dim { y[k] += rowW[r] * x[k] }
            }
            g0 = g1
        }
        return total
    }

    @inline(__always)
    static func squaredNorm(_ x: UnsafePointer<Double>, _ n: Int) -> Double {
        var s = 0.0
        for k in 0..<n { s += x[k] * x[k] }
        return s
    }

    /// ‖x_i − x_j‖ from a Gram entry and squared norms, or directly when that form would cancel.
    @inline(__always)
    static func distance(_ gij: Double, _ ii: Double, _ jj: Double, _ xi: UnsafePointer<Double>, _ xj: UnsafePointer<Double>, _ dim: Int) -> Double {
        let sq = ii + jj - 2 * gij
        if sq > 1e-6 * (ii + jj) { return sq.squareRoot() }
        var s = 0.0
        for k in 0..<dim {
            let d = xi[k] - xj[k]
            s += d * d
        }
        return s.squareRoot()
    }
}
