/// The element loops of the collectives. Plain indexed loops the optimiser vectorises; received
/// payloads are addressed byte-wise because ZeroMQ may place a small frame at any alignment.
///
/// Every sum adds the incoming partial sum and the local value in the same order on every rank
/// and run, so results are bit-identical across ranks and runs.
enum Kernels {
    /// `acc[i] += x[i]` for a received payload `acc`.
    @inline(__always)
    static func accumulate(_ acc: UnsafeMutableRawPointer, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let a = acc.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)
            acc.storeBytes(of: a + x[i], toByteOffset: i &* 4, as: Float.self)
        }
    }

    /// `acc[i] += x[i]; x[i] = acc[i]`: the last reduce step of an all-reduce, which keeps the
    /// final sum and also sends it on.
    @inline(__always)
    static func accumulateAndStore(_ acc: UnsafeMutableRawPointer, _ x: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let s = acc.loadUnaligned(fromByteOffset: i &* 4, as: Float.self) + x[i]
            acc.storeBytes(of: s, toByteOffset: i &* 4, as: Float.self)
            x[i] = s
        }
    }

    /// `y[i] += x[i]` for aligned float buffers.
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// `out[i] = acc[i] + x[i]` for a received payload `acc`.
    @inline(__always)
    static func sum(_ acc: UnsafeRawPointer, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { out[i] = acc.loadUnaligned(fromByteOffset: i &* 4, as: Float.self) + x[i] }
    }
}
