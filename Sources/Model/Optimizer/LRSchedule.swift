#if canImport(Glibc)
import Glibc
#endif

/// Linear warm-up then cosine decay to zero over a phase (open_clip's `cosine_lr`):
/// `lr(k) = base·(k+1)/warmup` for k < warmup, then `½·(1 + cos(π·(k−warmup)/(total−warmup)))·base`.
public struct LRSchedule: Sendable, Equatable {
    public var warmup: Int
    public var total: Int

    public init(warmup: Int, total: Int) {
        self.warmup = warmup
        self.total = total
    }

    /// The multiplier of the base learning rate at step `k` (0-based) of the phase.
    public func factor(at k: Int) -> Double {
        if k < warmup { return Double(k + 1) / Double(warmup) }
        let span = total - warmup
        if span <= 0 { return 1 }
        let e = Double(min(k - warmup, span))
        return 0.5 * (1 + cos(Double.pi * e / Double(span)))
    }
}
