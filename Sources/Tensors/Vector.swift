/// Small vector kernels shared by the layers. Written as plain indexed loops over raw pointers so
/// the compiler vectorises them; reductions use explicit SIMD lanes (a scalar float sum does not
/// vectorise, because reordering it would change the result).
public enum Vector {
    /// Σ x[i], accumulated in 8 lanes then combined.
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Σ x[i]·y[i], accumulated in 8 lanes then combined.
    @inlinable
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            acc += a * b
            i += 8
        }
        var s = acc.sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }

    /// Σ x[i]², accumulated in 8 lanes then combined.
    @inlinable
    public static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Float { dot(x, x, n) }

    /// Σ (x[i] − y[i])², accumulated in float64 (used where cancellation matters: distances).
    @inlinable
    public static func squaredDistance(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Double {
        var acc = SIMD4<Double>()
        var i = 0
        while i + 4 <= n {
            let a = SIMD4<Double>(Double(x[i]), Double(x[i + 1]), Double(x[i + 2]), Double(x[i + 3]))
            let b = SIMD4<Double>(Double(y[i]), Double(y[i + 1]), Double(y[i + 2]), Double(y[i + 3]))
            let d = a - b
            acc += d * d
            i += 4
        }
        var s = acc.sum()
        while i < n { let d = Double(x[i]) - Double(y[i]); s += d * d; i += 1 }
        return s
    }

    /// y[i] += a · x[i]
    @inlinable
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += a * x[i] }
    }

    /// y[i] = a · x[i]
    @inlinable
    public static func scale(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = a * x[i] }
    }

    /// y[i] += x[i]
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// Column sums of a `(rows, cols)` matrix: out[j] = Σ_i x[i, j], accumulated in float64 so
    /// the result barely depends on how the rows are split among workers. Overwrites `out`.
    @inlinable
    public static func columnSums(
        _ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>
    ) {
        Parallel.forChunks(cols, minPerThread: 1024, align: columnTile, ColumnSums(x: x, rows: rows, cols: cols, out: out))
    }

    /// Columns summed together in one pass over the rows.
    public static let columnTile = 64

    @usableFromInline
    struct ColumnSums: ChunkJob {
        @usableFromInline let x: UnsafePointer<Float>
        @usableFromInline let rows, cols: Int
        @usableFromInline let out: UnsafeMutablePointer<Float>

        @inlinable init(x: UnsafePointer<Float>, rows: Int, cols: Int, out: UnsafeMutablePointer<Float>) {
            self.x = x
            self.rows = rows
            self.cols = cols
            self.out = out
        }

        @inlinable func run(_ lo: Int, _ hi: Int) {
            withUnsafeTemporaryAllocation(of: Double.self, capacity: Vector.columnTile) { acc in
                var c0 = lo
                while c0 < hi {
                    let n = min(Vector.columnTile, hi - c0)
                    for j in 0..<n { acc[j] = 0 }
                    for i in 0..<rows {
                        let row = x + i * cols + c0
                        for j in 0..<n { acc[j] += Double(row[j]) }
                    }
                    for j in 0..<n { out[c0 + j] = Float(acc[j]) }
                    c0 += n
                }
            }
        }
    }

    /// Adds `bias (cols)` to every row of a `(rows, cols)` matrix.
    @inlinable
    public static func addRowVector(
        _ bias: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, rows: Int, cols: Int
    ) {
        for i in 0..<rows {
            let row = x + i * cols
            for j in 0..<cols { row[j] += bias[j] }
        }
    }
}

/// Eight floats from `p` (no alignment needed).
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at `p` (no alignment needed).
@inlinable @inline(__always)
public func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
