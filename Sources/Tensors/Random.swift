/// Deterministic random numbers: a SplitMix64 stream (8 bytes of state, so a checkpoint can hold
/// it) and a stateless `mix` for counter-based draws, so the value for a given (seed, epoch,
/// sample) never depends on how many workers share the work or in which order they ask.
public struct SplitMix64: Sendable, Equatable {
    /// The whole state.
    public var state: UInt64

    /// A stream seeded with `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.finalize(state)
    }

    /// A uniform float64 in [0, 1) with 53 random bits.
    @inlinable
    public mutating func uniform() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A uniform integer in `0..<n` (n > 0), without modulo bias.
    @inlinable
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let x = next()
            if x < limit { return Int(x % bound) }
        }
    }

    /// A standard normal float64 (Box–Muller; one draw per call, the pair's twin discarded so the
    /// state alone determines the sequence).
    @inlinable
    public mutating func normal() -> Double {
        var u = uniform()
        while u <= 0 { u = uniform() }
        let v = uniform()
        return (-2 * _log(u)).squareRoot() * _cos(2 * Double.pi * v)
    }

    /// The SplitMix64 output function: a bijective 64-bit mixer.
    @inlinable
    public static func finalize(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A stateless hash of two words, for counter-based draws: `mix(mix(seed, epoch), index)`.
    @inlinable
    public static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        finalize(finalize(a &+ 0x9E37_79B9_7F4A_7C15) ^ b)
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _log(_ x: Double) -> Double { Glibc.log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#endif
