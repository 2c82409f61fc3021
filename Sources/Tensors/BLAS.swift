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
        if GemmLog.isRecording { GemmLog.record(GemmShape(transA: transA, transB: transB, m: m, n: n, k: k, beta: beta)) }
        if k == 0 {
            // No products: C = beta · C (BLAS semantics), done explicitly since some BLAS skip it.
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { for j in 0..<n { row[j] = 0 } } else { for j in 0..<n { row[j] *= beta } }
            }
            return
        }
        let parts = splitThreads
        let work = Double(m) * Double(n) * Double(k)
        if parts > 1 && work >= 4_194_304 {
            Parallel.run(parts: parts, GemmPart(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, parts: parts))
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// When > 1, large products are split into this many parts along their larger output
    /// dimension, each a single-threaded OpenBLAS call on a thread of `Parallel`'s pool (OpenBLAS
    /// itself then runs single-threaded).
    ///
    /// `nonisolated(unsafe)`: set at start-up (`useThreads`) before any product runs, only read
    /// afterwards; not to be changed while another thread multiplies.
    nonisolated(unsafe) public static var splitThreads = 1

    @usableFromInline
    struct GemmPart: PartJob {
        @usableFromInline let transA, transB: Bool
        @usableFromInline let m, n, k: Int
        @usableFromInline let alpha: Float
        @usableFromInline let a: UnsafePointer<Float>
        @usableFromInline let lda: Int
        @usableFromInline let b: UnsafePointer<Float>
        @usableFromInline let ldb: Int
        @usableFromInline let beta: Float
        @usableFromInline let c: UnsafeMutablePointer<Float>
        @usableFromInline let ldc, parts: Int

        @inlinable init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int) {
            self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k; self.alpha = alpha
            self.a = a; self.lda = lda; self.b = b; self.ldb = ldb; self.beta = beta; self.c = c; self.ldc = ldc; self.parts = parts
        }

        @inlinable func run(part i: Int) {
            if n >= m {
                // Columns of op(B) and C: op(B)[:, j0..<j1] starts at column j0 (NoTrans) or row j0 (Trans).
                let j0 = (i * n / parts + 15) / 16 * 16, j1 = i == parts - 1 ? n : ((i + 1) * n / parts + 15) / 16 * 16
                if j0 >= j1 { return }
                let bPart = transB ? b + j0 * ldb : b + j0
                cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                            Int32(m), Int32(j1 - j0), Int32(k), alpha, a, Int32(lda), bPart, Int32(ldb), beta, c + j0, Int32(ldc))
            } else {
                let i0 = (i * m / parts + 15) / 16 * 16, i1 = i == parts - 1 ? m : ((i + 1) * m / parts + 15) / 16 * 16
                if i0 >= i1 { return }
                let aPart = transA ? a + i0 : a + i0 * lda
                cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                            Int32(i1 - i0), Int32(n), Int32(k), alpha, aPart, Int32(lda), b, Int32(ldb), beta, c + i0 * ldc, Int32(ldc))
            }
        }
    }

    /// The float64 product, `C (M, N) = alpha · op(A) · op(B) + beta · C` — for the loss side of a
    /// step, whose sums must not depend on how the batch is split among workers.
    @inlinable
    public static func dgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? 0 : row[j] * beta }
            }
            return
        }
        cblas_dgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Sets up `threads` compute threads for a process, one level of parallelism: proclip's pool runs
    /// the element-wise kernels and splits large GEMMs into per-thread OpenBLAS calls, and OpenBLAS
    /// itself stays single-threaded (its own threads would spin between calls and compete with the
    /// pool for the same cores).
    public static func useThreads(_ threads: Int) {
        let t = max(1, threads)
        Parallel.threads = t
        BLAS.threads = 1
        splitThreads = t
    }

    /// Number of threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}

/// One matrix product as executed: what `proclip bench step` replays alone to measure the sgemm
/// rate on a step's own shapes.
public struct GemmShape: Hashable, Sendable {
    public let transA, transB: Bool
    public let m, n, k: Int
    public let beta: Float

    public init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, beta: Float) {
        self.transA = transA
        self.transB = transB
        self.m = m
        self.n = n
        self.k = k
        self.beta = beta
    }

    /// Floating-point operations, 2·m·n·k.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// Records the GEMMs executed between `start()` and `stop()` (benchmarks only; off otherwise).
///
/// `nonisolated(unsafe)`: started, fed and stopped by the one thread that runs the products being
/// measured (`proclip bench`); with recording off (always, outside benchmarks) nothing writes.
public enum GemmLog {
    /// Whether products are being recorded.
    nonisolated(unsafe) public private(set) static var isRecording = false
    nonisolated(unsafe) private static var shapes: [GemmShape] = []

    /// Starts a fresh recording.
    public static func start() {
        shapes.removeAll()
        isRecording = true
    }

    /// Stops recording and returns the GEMMs in execution order.
    public static func stop() -> [GemmShape] {
        isRecording = false
        return shapes
    }

    @usableFromInline static func record(_ s: GemmShape) { shapes.append(s) }
}
