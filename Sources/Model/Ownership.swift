/// Which rows of the global batch, and which structure groups, a worker owns (docs/design.md §3).
///
/// Rows: rank r of W holds positions `[⌊r·B/W⌋, ⌊(r+1)·B/W⌋)` — contiguous, sizes differing by at
/// most one, possibly empty when B < W. Groups: of the `⌈B/G⌉` structure groups, rank r evaluates
/// `[⌊r·n/W⌋, ⌊(r+1)·n/W⌋)`. Every row and every group has exactly one owner, so owners' loss
/// terms and gradients add up to those of the whole batch.
public struct Ownership: Sendable, Equatable {
    public let batch: Int
    public let world: Int
    public let rank: Int

    public init(batch: Int, world: Int, rank: Int) {
        precondition(world >= 1 && rank >= 0 && rank < world && batch >= 0)
        self.batch = batch
        self.world = world
        self.rank = rank
    }

    /// Rows of rank `r`.
    public static func rows(batch: Int, world: Int, rank r: Int) -> Range<Int> {
        (r * batch / world)..<((r + 1) * batch / world)
    }

    /// This worker's rows.
    public var rows: Range<Int> { Ownership.rows(batch: batch, world: world, rank: rank) }

    /// Rows of every rank, in rank order.
    public var allRows: [Range<Int>] { (0..<world).map { Ownership.rows(batch: batch, world: world, rank: $0) } }

    /// The structure groups (of size `group`) this worker evaluates.
    public func groups(size group: Int) -> Range<Int> {
        let n = (batch + group - 1) / group
        return (rank * n / world)..<((rank + 1) * n / world)
    }
}
