import Tensors

/// A fully connected layer `out = inp · Wᵀ + b` with PyTorch's `[out, in]` weight layout.
public enum Linear {
    /// out (N, O) = inp (N, I) · weight (O, I)ᵀ + bias (O). With `accumulate`, adds to `out`.
    public static func forward(
        out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false
    ) {
        BLAS.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                  a: inp, lda: inFeatures, b: weight, ldb: inFeatures,
                  beta: accumulate ? 1 : 0, c: out, ldc: outFeatures)
        if let bias { Vector.addRowVector(bias, to: out, rows: rows, cols: outFeatures) }
    }

    /// Backward. Writes dweight (O, I) = doutᵀ · inp and, when given, dbias (O) = Σ_rows dout.
    /// When `dinp` is given, writes (or with `accumulateInput` adds) dinp (N, I) = dout · weight.
    public static func backward(
        dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
        dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        rows: Int, inFeatures: Int, outFeatures: Int, accumulateInput: Bool = false
    ) {
        BLAS.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
                  a: dout, lda: outFeatures, b: inp, ldb: inFeatures, beta: 0, c: dweight, ldc: inFeatures)
        if let dbias { Vector.columnSums(dout, rows: rows, cols: outFeatures, into: dbias) }
        if let dinp {
            BLAS.gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                      a: dout, lda: outFeatures, b: weight, ldb: inFeatures,
                      beta: accumulateInput ? 1 : 0, c: dinp, ldc: inFeatures)
        }
    }
}
