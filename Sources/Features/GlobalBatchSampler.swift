import Tensors

/// Where training stands within the data: epoch and step within that epoch. Two integers, so a
/// checkpoint holds it exactly; the sampler turns it back into the same batch on any world size.
public struct EpochPosition: Sendable, Codable, Equatable, Hashable {
    /// Epoch, from 0.
    public var epoch: Int
    /// Step within the epoch, `0..<stepsPerEpoch`.
    public var step: Int

    /// The position of `step` within `epoch`.
    public init(epoch: Int, step: Int) {
        self.epoch = epoch
        self.step = step
    }
}

/// The global-batch sampler (docs/design.md §4). Epoch e visits the population (e.g. the train split's
/// global sample indices) in a permutation seeded by (seed, e); global step k of the epoch takes
/// positions `[k·B, (k+1)·B)` of it; worker r of W takes positions
/// `[floor(r·B/W), floor((r+1)·B/W))` of the batch — contiguous, disjoint, covering the batch
/// for every W (a worker's slice is empty when B < W and its floor bounds coincide).
///
/// Uneven last batch: dropped (open_clip's `drop_last`), so every step has exactly B rows and
/// `stepsPerEpoch = floor(N / B)`; the N mod B samples left out differ from epoch to epoch.
///
/// The permutation is generated once per epoch into a buffer allocated at init (Fisher–Yates
/// from the identity with a SplitMix64 stream seeded by `mix(seed, epoch)`), so epoch e's order
/// depends on (seed, e) only, never on the epochs before it; steps allocate nothing.
public struct GlobalBatchSampler: Sendable {
    /// Global sample indices the sampler draws from (N of them).
    public let population: [Int]
    /// Global batch size B.
    public let batchSize: Int
    /// The run's data seed.
    public let seed: UInt64
    /// The epoch `order` currently holds.
    public private(set) var epoch: Int
    /// This epoch's visiting order: a permutation of `population`.
    public private(set) var order: [Int]

    /// Steps per epoch: `floor(N / B)`.
    public var stepsPerEpoch: Int { population.count / batchSize }

    /// A sampler over `population` positioned at epoch 0. Throws when the population holds fewer
    /// than one batch.
    public init(population: [Int], batchSize: Int, seed: UInt64) throws {
        guard batchSize > 0 else { throw SamplerError(description: "batch size \(batchSize) must be positive") }
        guard population.count >= batchSize else {
            throw SamplerError(description: "\(population.count) samples are fewer than one batch of \(batchSize)")
        }
        self.population = population
        self.batchSize = batchSize
        self.seed = seed
        epoch = 0
        order = population
        GlobalBatchSampler.permute(&order, population, seed: seed, epoch: 0)
    }

    /// Regenerates `order` for `epoch` (no allocation; a no-op if already there).
    public mutating func startEpoch(_ epoch: Int) {
        guard epoch != self.epoch else { return }
        self.epoch = epoch
        GlobalBatchSampler.permute(&order, population, seed: seed, epoch: epoch)
    }

    /// The B global sample indices of `position`'s step (switching epochs when needed).
    public mutating func batch(at position: EpochPosition) -> ArraySlice<Int> {
        slice(at: position, rank: 0, worldSize: 1)
    }

    /// Worker `rank` of `worldSize`'s rows of `position`'s step: batch positions
    /// `workerRange(rank:worldSize:)`. Allocation-free (a slice of `order`); drop the slice before
    /// asking for another epoch, or regenerating `order` copies it once.
    public mutating func slice(at position: EpochPosition, rank: Int, worldSize: Int) -> ArraySlice<Int> {
        precondition(position.step >= 0 && position.step < stepsPerEpoch, "step \(position.step) outside 0..<\(stepsPerEpoch)")
        startEpoch(position.epoch)
        let r = GlobalBatchSampler.workerRange(rank: rank, worldSize: worldSize, batchSize: batchSize)
        let base = position.step * batchSize
        return order[(base + r.lowerBound)..<(base + r.upperBound)]
    }

    /// Batch positions of worker `rank` of `worldSize`: `[floor(r·B/W), floor((r+1)·B/W))`.
    public static func workerRange(rank: Int, worldSize: Int, batchSize: Int) -> Range<Int> {
        precondition(worldSize > 0 && rank >= 0 && rank < worldSize, "rank \(rank) of world size \(worldSize)")
        return (rank * batchSize / worldSize)..<((rank + 1) * batchSize / worldSize)
    }

    /// The position after `position`: the next step, or step 0 of the next epoch.
    public func advance(_ position: EpochPosition) -> EpochPosition {
        position.step + 1 < stepsPerEpoch ? EpochPosition(epoch: position.epoch, step: position.step + 1)
            : EpochPosition(epoch: position.epoch + 1, step: 0)
    }

    /// The position of global step `globalStep` counted from the start of training.
    public func position(ofGlobalStep globalStep: Int) -> EpochPosition {
        EpochPosition(epoch: globalStep / stepsPerEpoch, step: globalStep % stepsPerEpoch)
    }

    /// Fisher–Yates shuffle of `population` into `order`, seeded by (seed, epoch).
    static func permute(_ order: inout [Int], _ population: [Int], seed: UInt64, epoch: Int) {
        var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(bitPattern: Int64(epoch))))
        order.withUnsafeMutableBufferPointer { o in
            population.withUnsafeBufferPointer { p in
                for i in 0..<p.count { o[i] = p[i] }
                var i = o.count - 1
                while i > 0 {
                    let j = rng.below(i + 1)
                    o.swapAt(i, j)
                    i -= 1
                }
            }
        }
    }

    /// The caption variant of sample `sample` in `epoch` (the contrast phase's one-variant-per-row
    /// draw): a stateless hash of (seed, epoch, sample) choosing among `allowed` (variant indices,
    /// non-empty). It depends on nothing else, so any worker computes the same draw for any world
    /// size or batch layout.
    @inlinable
    public static func variant(seed: UInt64, epoch: Int, sample: Int, allowed: UnsafeBufferPointer<Int>) -> Int {
        precondition(!allowed.isEmpty, "no caption variants to draw from")
        let h = SplitMix64.mix(SplitMix64.mix(seed ^ 0x5641_5249_414E_5453, UInt64(bitPattern: Int64(epoch))),
                               UInt64(bitPattern: Int64(sample)))
        return allowed[Int(h.multipliedFullWidth(by: UInt64(allowed.count)).high)]
    }

    /// Fills `out[i]` with the variant of `rows[i]` in `epoch` (see `variant(seed:epoch:sample:allowed:)`).
    public static func variants(seed: UInt64, epoch: Int, rows: ArraySlice<Int>, allowed: [Int],
                                into out: UnsafeMutableBufferPointer<Int>) {
        precondition(out.count == rows.count, "\(out.count) outputs for \(rows.count) rows")
        allowed.withUnsafeBufferPointer { a in
            rows.withUnsafeBufferPointer { r in
                for i in 0..<r.count { out[i] = variant(seed: seed, epoch: epoch, sample: r[i], allowed: a) }
            }
        }
    }
}

/// A sampler that cannot be built (e.g. fewer samples than one batch).
public struct SamplerError: Error, CustomStringConvertible, Equatable {
    /// One line saying what is wrong.
    public let description: String
}
