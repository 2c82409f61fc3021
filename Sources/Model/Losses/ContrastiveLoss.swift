import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// The symmetric contrastive loss with learnable temperature (open_clip's `ClipLoss`):
/// `L_clip = ½ [CE(s·U·Tᵀ, I) + CE(s·T·Uᵀ, I)]`, each cross-entropy the mean over the B rows,
/// `s = exp(log s)`.
///
/// A worker evaluates only the rows it owns: row i of the image→text logits (u_i against every
/// t_j) and row i of the text→image logits (t_i against every u_j), both scaled by 1/(2B). Summed
/// over owners, the terms and their gradients are exactly those of the whole batch.
public enum ContrastiveLoss {
    /// Floats of scratch for `rows` owned rows of a batch of `batch`.
    public static func scratchFloats(rows: Int, batch: Int) -> Int { 2 * rows * batch }

    /// Returns (loss of the owned `rows`, ∂loss/∂(log s)). Adds ∂loss/∂U to du (B, E) and ∂loss/∂T
    /// to dt (B, E) — rows beyond `rows` included. u, t: (B, E), unit rows.
    public static func apply(
        u: UnsafePointer<Float>, t: UnsafePointer<Float>, batch: Int, dim: Int, logScale: Float,
        rows: Range<Int>, du: UnsafeMutablePointer<Float>, dt: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) -> (loss: Double, dLogScale: Double) {
        let m = rows.count
        if m == 0 || batch == 0 { return (0, 0) }
        let s = expf(logScale)
        let r0 = rows.lowerBound
        let li = scratch, lt = scratch + m * batch
        // logits: image→text rows (U_R·Tᵀ) and text→image rows (T_R·Uᵀ), scaled by s.
        BLAS.gemm(transA: false, transB: true, m: m, n: batch, k: dim, alpha: s, a: u + r0 * dim, lda: dim,
                  b: t, ldb: dim, c: li, ldc: batch)
        BLAS.gemm(transA: false, transB: true, m: m, n: batch, k: dim, alpha: s, a: t + r0 * dim, lda: dim,
                  b: u, ldb: dim, c: lt, ldc: batch)
        let scale = Float(0.5 / Double(batch))
        var loss = 0.0, dls = 0.0
        for half in 0..<2 {
            let logits = half == 0 ? li : lt
            for k in 0..<m {
                let row = logits + k * batch
                let (ce, d) = softmaxCrossEntropy(row, count: batch, target: r0 + k, scale: scale)
                loss += ce
                dls += d
            }
        }
        loss *= 0.5 / Double(batch)
        // Rows of li / lt now hold d loss / d logits. logit = s·⟨·,·⟩, so d⟨·,·⟩ = s·d logit.
        // image→text: du_R += s·G_i·T ; dT += s·G_iᵀ·U_R
        BLAS.gemm(transA: false, transB: false, m: m, n: dim, k: batch, alpha: s, a: li, lda: batch,
                  b: t, ldb: dim, beta: 1, c: du + r0 * dim, ldc: dim)
        BLAS.gemm(transA: true, transB: false, m: batch, n: dim, k: m, alpha: s, a: li, lda: batch,
                  b: u + r0 * dim, ldb: dim, beta: 1, c: dt, ldc: dim)
        // text→image: dt_R += s·G_t·U ; dU += s·G_tᵀ·T_R
        BLAS.gemm(transA: false, transB: false, m: m, n: dim, k: batch, alpha: s, a: lt, lda: batch,
                  b: u, ldb: dim, beta: 1, c: dt + r0 * dim, ldc: dim)
        BLAS.gemm(transA: true, transB: false, m: batch, n: dim, k: m, alpha: s, a: lt, lda: batch,
                  b: t + r0 * dim, ldb: dim, beta: 1, c: du, ldc: dim)
        return (loss, dls)
    }

    /// Cross-entropy of one logit row against `target`. Overwrites the row with
    /// `scale · (softmax − onehot)` and returns (the row's CE, Σ_j grad_j · logit_j), the row's part
    /// of d loss / d(log s).
    @inline(__always)
    static func softmaxCrossEntropy(_ row: UnsafeMutablePointer<Float>, count: Int, target: Int, scale: Float) -> (Double, Double) {
        var mx = -Float.infinity
        for j in 0..<count { mx = max(mx, row[j]) }
        var z: Double = 0
        for j in 0..<count { z += Double(expf(row[j] - mx)) }
        let logZ = Double(mx) + log(z)
        let ce = logZ - Double(row[target])
        let inv = Float(1 / z)
        var dls: Double = 0
        for j in 0..<count {
            let logit = row[j]
            var g = expf(logit - mx) * inv
            if j == target { g -= 1 }
            g *= scale
            dls += Double(g * logit)
            row[j] = g
        }
        return (ce, dls)
    }
}
