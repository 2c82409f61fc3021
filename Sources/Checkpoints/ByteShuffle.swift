import Tensors

/// Byte shuffle of float32 data, as Blosc's: byte k of every element is grouped into plane k, so
/// a tensor of `n` elements becomes 4 planes of `n` bytes (`plane[k][i] = byte k of element i`).
/// The planes holding sign and exponent repeat a few values and compress; the low mantissa
/// bytes stay noise either way. Viewed as uint8, the planes of a tensor of shape `S` are an array
/// of shape `[4] + S`.
///
/// Both directions work on an element range `lo..<hi` of an `n`-element tensor, so a copy can be
/// split across threads. Sixteen elements at a time: four 4×4 byte transposes in `SIMD4<UInt32>`
/// lanes, then one 4×4 word transpose; about half the speed of `memcpy` on one core.
enum ByteShuffle {
    /// Writes elements `lo..<hi` of the `n` 4-byte elements at `src` into the planes at `dst`
    /// (`4·n` bytes).
    static func shuffle(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int, range: Range<Int>) {
        var i = range.lowerBound
        let hi = range.upperBound
        while i + 16 <= hi {
            let r0 = transpose(src.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<UInt32>.self))
            let r1 = transpose(src.loadUnaligned(fromByteOffset: 4 * i + 16, as: SIMD4<UInt32>.self))
            let r2 = transpose(src.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD4<UInt32>.self))
            let r3 = transpose(src.loadUnaligned(fromByteOffset: 4 * i + 48, as: SIMD4<UInt32>.self))
            dst.storeBytes(of: SIMD4(r0[0], r1[0], r2[0], r3[0]), toByteOffset: i, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: SIMD4(r0[1], r1[1], r2[1], r3[1]), toByteOffset: n + i, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: SIMD4(r0[2], r1[2], r2[2], r3[2]), toByteOffset: 2 * n + i, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: SIMD4(r0[3], r1[3], r2[3], r3[3]), toByteOffset: 3 * n + i, as: SIMD4<UInt32>.self)
            i += 16
        }
        let s = src.assumingMemoryBound(to: UInt8.self)
        let d = dst.assumingMemoryBound(to: UInt8.self)
        while i < hi {
            for k in 0..<4 { d[k * n + i] = s[4 * i + k] }
            i += 1
        }
    }

    /// Inverse of `shuffle`: elements `lo..<hi` from the planes at `src` (`4·n` bytes) into `dst`.
    static func unshuffle(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int, range: Range<Int>) {
        var i = range.lowerBound
        let hi = range.upperBound
        while i + 16 <= hi {
            let p0 = src.loadUnaligned(fromByteOffset: i, as: SIMD4<UInt32>.self)
            let p1 = src.loadUnaligned(fromByteOffset: n + i, as: SIMD4<UInt32>.self)
            let p2 = src.loadUnaligned(fromByteOffset: 2 * n + i, as: SIMD4<UInt32>.self)
            let p3 = src.loadUnaligned(fromByteOffset: 3 * n + i, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: transpose(SIMD4(p0[0], p1[0], p2[0], p3[0])), toByteOffset: 4 * i, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: transpose(SIMD4(p0[1], p1[1], p2[1], p3[1])), toByteOffset: 4 * i + 16, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: transpose(SIMD4(p0[2], p1[2], p2[2], p3[2])), toByteOffset: 4 * i + 32, as: SIMD4<UInt32>.self)
            dst.storeBytes(of: transpose(SIMD4(p0[3], p1[3], p2[3], p3[3])), toByteOffset: 4 * i + 48, as: SIMD4<UInt32>.self)
            i += 16
        }
        let s = src.assumingMemoryBound(to: UInt8.self)
        let d = dst.assumingMemoryBound(to: UInt8.self)
        while i < hi {
            for k in 0..<4 { d[4 * i + k] = s[k * n + i] }
            i += 1
        }
    }

    /// `unshuffle` of a whole tensor, spread over `Parallel`'s threads when it is large.
    static func unshuffleParallel(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int) {
        let parts = n >= 1 << 18 ? Parallel.threads : 1
        if parts <= 1 { return unshuffle(src, dst, count: n, range: 0..<n) }
        Parallel.run(parts: parts, UnshuffleJob(src: src, dst: dst, count: n, parts: parts))
    }

    /// Transposes the 4×4 byte matrix whose row r is lane r (little-endian bytes are columns):
    /// afterwards lane c holds column c. Two delta swaps: 16-bit halves between lanes (0, 2) and
    /// (1, 3), then bytes between lanes (0, 1) and (2, 3).
    @inline(__always)
    static func transpose(_ v: SIMD4<UInt32>) -> SIMD4<UInt32> {
        let low2 = SIMD4<UInt32>(~0, ~0, 0, 0)
        let d = ((v &>> 16) ^ SIMD4(v[2], v[3], v[0], v[1])) & 0xFFFF
        let w = v ^ (((d &<< 16) & low2) | (SIMD4(d[2], d[3], d[0], d[1]) & ~low2))
        let even = SIMD4<UInt32>(~0, 0, ~0, 0)
        let e = ((w &>> 8) ^ SIMD4(w[1], w[0], w[3], w[2])) & 0x00FF_00FF
        return w ^ (((e &<< 8) & even) | (SIMD4(e[1], e[0], e[3], e[2]) & ~even))
    }
}

/// Part `p` of an unshuffle: a slice of the elements, cut at multiples of 16.
struct UnshuffleJob: PartJob {
    let src: UnsafeRawPointer
    let dst: UnsafeMutableRawPointer
    let count: Int
    let parts: Int

    func run(part p: Int) {
        let lo = p == 0 ? 0 : (count * p / parts) & ~15
        let hi = p == parts - 1 ? count : (count * (p + 1) / parts) & ~15
        if lo < hi { ByteShuffle.unshuffle(src, dst, count: count, range: lo..<hi) }
    }
}
