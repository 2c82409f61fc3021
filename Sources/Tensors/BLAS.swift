import COpenBLAS

/// The one door to OpenBLAS. Every matrix product of proclip goes through `gemm`.
///
/// Matrices are row-major. Shapes in the doc comments use `(rows, cols)`.
public enum BLAS {
    /// `C (M, N) = alpha · op(A) · op(B) + beta · C`, with `op(A)` of shape `(M, K)` and `op(B)` of
    /// shape `(K, N)`. `lda`, `ldb`, `ldc` are row strides of the matrices as stored.
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // No products: C = beta · C (BLAS semantics), done explicitly since some BLAS skip it.
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { for j in 0..<n { row[j] = 0 } } else { for j in 0..<n { row[j] *= beta } }
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Number of threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}
