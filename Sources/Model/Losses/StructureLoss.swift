import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// Embedding structure alignment over groups of G consecutive rows of the global batch:
/// `L_str(a, b) = Σ_groups Σ_{i<j} smoothL1_β=1(‖a_i − a_j‖ − ‖b_i − b_j‖)` (reduction sum, as the
/// official `pdist` + `smooth_l1_loss`). Group g covers rows `[gG, min((g+1)G, B))`; the last
/// group is shorter when G does not divide B.
///
/// Distances come from Gram matrices (one GEMM per group), `‖a_i−a_j‖² = ‖a_i‖² + ‖a_j‖² − 2a_i·a_j`;
/// a pair whose squared distance is small against its norms (where that form cancels) is
/// recomputed directly from the difference in float64. At coincident points (distance 0) the
/// distance's gradient is taken as 0, as `torch.pdist` does: finite, never NaN.
///
/// The gradient: with w_ij = smoothL1'(δ_ij) / ‖a_i − a_j‖, ∂L/∂a_i = Σ_j w_ij (a_i − a_j), i.e.
/// `dA = diag(W·1)·A − W·A` per group — one more GEMM.
public enum StructureLoss {
    /// Floats of scratch needed for groups of up to `group` rows.
    public static func scratchFloats(group: Int) -> Int { 3 * group * group + group }

    /// Number of groups in a batch of `batch` rows.
    public static func groupCount(batch: Int, group: Int) -> Int { (batch + group - 1) / group }

    /// Returns the loss of `groups` (group indices) over a (B, E) against the teacher b (B, E), and
    /// adds `weight · ∂L/∂a` to da (B, E). `scratch` holds `scratchFloats(group:)` floats.
    public static func apply(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, batch: Int, dim: Int, group: Int,
        groups: Range<Int>, weight: Float, da: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) -> Double {
        var total = 0.0
        let ga = scratch, gb = scratch + group * group, w = scratch + 2 * group * group
        let rowW = scratch + 3 * group * group
        for g in groups {
            let r0 = g * group
            let n = min(group, batch - r0)
            if n < 2 { continue }
            let A = a + r0 * dim, Bm = b + r0 * dim
            BLAS.gemm(transA: false, transB: true, m: n, n: n, k: dim, a: A, lda: dim, b: A, ldb: dim, c: ga, ldc: n)
            BLAS.gemm(transA: false, transB: true, m: n, n: n, k: dim, a: Bm, lda: dim, b: Bm, ldb: dim, c: gb, ldc: n)
            for i in 0..<n { w[i * n + i] = 0; rowW[i] = 0 }
            for i in 0..<n {
                for j in (i + 1)..<n {
                    let dA = distance(ga, A, i, j, n, dim)
                    let dB = distance(gb, Bm, i, j, n, dim)
                    let delta = dA - dB
                    let slope: Double
                    if abs(delta) < 1 {
                        total += 0.5 * delta * delta
                        slope = delta
                    } else {
                        total += abs(delta) - 0.5
                        slope = delta > 0 ? 1 : -1
                    }
                    let wij = dA > 0 ? Float(slope / dA) * weight : 0
                    w[i * n + j] = wij
                    w[j * n + i] = wij
                    rowW[i] += wij
                    rowW[j] += wij
                }
            }
            // dA_g += diag(rowW)·A_g − W·A_g
            BLAS.gemm(transA: false, transB: false, m: n, n: dim, k: n, alpha: -1, a: w, lda: n, b: A, ldb: dim,
                      beta: 1, c: da + r0 * dim, ldc: dim)
            for i in 0..<n {
                Vector.axpy(rowW[i], A + i * dim, da + (r0 + i) * dim, dim)
            }
        }
        return total
    }

    /// ‖x_i − x_j‖ from the Gram matrix, or directly when the Gram form would cancel.
    @inline(__always)
    static func distance(_ gram: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ i: Int, _ j: Int, _ n: Int, _ dim: Int) -> Double {
        let ii = Double(gram[i * n + i]), jj = Double(gram[j * n + j])
        let sq = ii + jj - 2 * Double(gram[i * n + j])
        if sq > 1e-2 * (ii + jj) { return sq.squareRoot() }
        return Vector.squaredDistance(x + i * dim, x + j * dim, dim).squareRoot()
    }
}
