#if canImport(Glibc)
import Glibc
#endif

/// One owned, zero-initialised, 64-byte-aligned run of floats: `Slab` (float32, the model's
/// tensors) or `Slab64` (float64, the loss side).
///
/// Slabs are allocated once (at plan time) and addressed through raw pointers in hot loops, so
/// no copy-on-write or exclusivity checks sit between a kernel and its memory. The slab frees its
/// memory when the last reference goes away.
///
/// `@unchecked Sendable`: the object never changes (`base` and `count` are constants); its
/// elements are plain shared memory whose writers the users order (the pool's parts write
/// disjoint ranges and `run` joins them; threads pass slabs to one another through locks).
public final class AlignedBuffer<Element: BinaryFloatingPoint>: @unchecked Sendable {
    /// First element. Valid for `count` elements while the slab is alive.
    public let base: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int

    /// Allocates `count` elements, all zero.
    public init(count: Int) {
        precondition(count >= 0, "negative slab size")
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Element>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        base = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        self.count = count
    }

    /// A slab holding a copy of `values`.
    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: values.count) }
        }
    }

    deinit { free(base) }

    /// The whole slab as a buffer pointer.
    @inlinable public var buffer: UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: base, count: count)
    }

    /// Sets every element to zero.
    public func zero() { memset(base, 0, count * MemoryLayout<Element>.stride) }

    /// Copies the slab into a new array (for tests, files and reports; not for hot paths).
    public func toArray() -> [Element] { Array(buffer) }

    /// Pointer to element `offset`.
    @inlinable public func at(_ offset: Int) -> UnsafeMutablePointer<Element> { base + offset }
}

/// float32 slab: parameters, gradients, moments, activations.
public typealias Slab = AlignedBuffer<Float>
/// float64 slab: the loss side's working precision.
public typealias Slab64 = AlignedBuffer<Double>
