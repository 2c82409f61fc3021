import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// The symmetric contrastive loss with learnable temperature (open_clip's `ClipLoss`):
/// `L_clip = ½ [CE(M, I) + CE(Mᵀ, I)]` with `M = s·U·Tᵀ`, `s = exp(log s)`, each cross-entropy the
/// mean over the B rows. Float64 throughout.
///
/// A worker owning rows R computes, in two passes around one tiny exchange:
/// 1. `logits`: the rows R of M (u_r against every t_j) and of Mᵀ (t_r against every u_j), and
///    their log-sum-exps; the caller all-gathers the log-sum-exps of every row;
/// 2. `apply`: its rows' loss terms and the *full* gradient with respect to its own rows u_r and
///    t_r. Column r of M is row r of Mᵀ, which the worker holds, so with every row's
///    log-sum-exp it needs nothing else:
///    `du_r = s·Σ_j (P_M[r,j] + P_Mᵀ[j,r] − 2δ_rj)/(2B)·t_j` and likewise for `dt_r`.
/// No other worker contributes to a row's gradient.
public enum ContrastiveLoss {
    /// Doubles of scratch for `rows` owned rows of a batch of `batch`.
    public static func scratchCount(rows: Int, batch: Int) -> Int { 2 * rows * batch }

    /// Pass 1: writes the owned logit rows into `scratch` and their log-sum-exps into
    /// `lse` (2·rows: rows of M, then rows of Mᵀ). u, t: (B, E).
    public static func logits(
        u: UnsafePointer<Double>, t: UnsafePointer<Double>, batch: Int, dim: Int, logScale: Double,
        rows: Range<Int>, lse: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>
    ) {
        let m = rows.count
        if m == 0 || batch == 0 { return }
        let s = exp(logScale)
        let r0 = rows.lowerBound
        let lm = scratch, lt = scratch + m * batch
        BLAS.dgemm(transA: false, transB: true, m: m, n: batch, k: dim, alpha: s, a: u + r0 * dim, lda: dim,
                   b: t, ldb: dim, c: lm, ldc: batch)
        BLAS.dgemm(transA: false, transB: true, m: m, n: batch, k: dim, alpha: s, a: t + r0 * dim, lda: dim,
                   b: u, ldb: dim, c: lt, ldc: batch)
        for k in 0..<(2 * m) { lse[k] = logSumExp(scratch + k * batch, batch) }
    }

    /// Pass 2: returns (loss of the owned rows, their part of ∂L/∂(log s)) and adds ∂L/∂u_r to
    /// du (rows, E) and ∂L/∂t_r to dt (rows, E) for the owned rows. `lseM`, `lseMT`: (B) the
    /// log-sum-exps of every row of M and of Mᵀ. `scratch` holds pass 1's logits (overwritten).
    public static func apply(
        u: UnsafePointer<Double>, t: UnsafePointer<Double>, batch: Int, dim: Int, logScale: Double,
        rows: Range<Int>, lseM: UnsafePointer<Double>, lseMT: UnsafePointer<Double>,
        du: UnsafeMutablePointer<Double>, dt: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>
    ) -> (loss: Double, dLogScale: Double) {
        let m = rows.count
        if m == 0 || batch == 0 { return (0, 0) }
        let s = exp(logScale)
        let r0 = rows.lowerBound
        let lm = scratch, lt = scratch + m * batch
        let half = 0.5 / Double(batch)
        var loss = 0.0, dls = 0.0
        for r in 0..<m {
            let i = r0 + r
            loss += (lseM[i] - lm[r * batch + i]) + (lseMT[i] - lt[r * batch + i])
            // Row r of M holds M[i,j] = s·u_i·t_j: row i of M and column i of Mᵀ.
            let rowM = lm + r * batch, rowT = lt + r * batch
            for j in 0..<batch {
                let x = rowM[j]
                let pRow = exp(x - lseM[i]) - (j == i ? 1 : 0)
                let pCol = exp(x - lseMT[j]) - (j == i ? 1 : 0)
                dls += pRow * x
                rowM[j] = (pRow + pCol) * half
            }
            // Row r of Mᵀ holds Mᵀ[i,j] = s·t_i·u_j: row i of Mᵀ and column i of M.
            for j in 0..<batch {
                let x = rowT[j]
                let pRow = exp(x - lseMT[i]) - (j == i ? 1 : 0)
                let pCol = exp(x - lseM[j]) - (j == i ? 1 : 0)
                dls += pRow * x
                rowT[j] = (pRow + pCol) * half
            }
        }
        // logit = s·⟨·,·⟩: du_R += s·C_u·T, dt_R += s·C_t·U.
        BLAS.dgemm(transA: false, transB: false, m: m, n: dim, k: batch, alpha: s, a: lm, lda: batch,
                   b: t, ldb: dim, beta: 1, c: du, ldc: dim)
        BLAS.dgemm(transA: false, transB: false, m: m, n: dim, k: batch, alpha: s, a: lt, lda: batch,
                   b: u, ldb: dim, beta: 1, c: dt, ldc: dim)
        return (loss * half, dls * half)
    }

    @inline(__always)
    static func logSumExp(_ x: UnsafePointer<Double>, _ n: Int) -> Double {
        var mx = -Double.infinity
        for j in 0..<n { mx = max(mx, x[j]) }
        var z = 0.0
        for j in 0..<n { z += exp(x[j] - mx) }
        return mx + log(z)
    }
}
