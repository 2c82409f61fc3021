import Tensors

/// K workers simulated in one process: each has its own `StepEngine` (its rows, activations and
/// gradients) and the collectives are plain sums in memory. With K = 1 it is the single-process
/// step; with K > 1 it checks that splitting the batch among owners leaves the result unchanged
/// (`proclip grad --workers K`).
public final class LocalGroup {
    public let engines: [StepEngine]
    private let gathered: Slab
    private let received: Slab
    private let summed: Slab?
    private let scatterCounts: [Int]
    private let span: Range<Int>

    public init(layout: ParameterLayout, settings: LossSettings, batch: Int, workers: Int) {
        engines = (0..<workers).map {
            StepEngine(layout: layout, settings: settings, ownership: Ownership(batch: batch, world: workers, rank: $0))
        }
        let e = engines[0]
        gathered = Slab(count: e.gatherCounts.reduce(0, +))
        received = Slab(count: e.scatterCounts.max() ?? 0)
        summed = workers > 1 ? Slab(count: layout.count) : nil
        scatterCounts = e.scatterCounts
        span = layout.span(of: e.computedGroups)
    }

    /// The summed parameter gradients of the last `step`.
    public var grads: Slab { summed ?? engines[0].grads }

    /// One forward/backward of the whole batch (inputs already filled); returns the loss terms.
    public func step(store: ParameterStore) -> LossTerms {
        for e in engines { e.forward(store: store) }
        // all-gather
        var at = gathered.base
        for e in engines {
            at.update(from: e.local.base, count: e.local.count)
            at += e.local.count
        }
        var terms = LossTerms()
        for e in engines { terms = terms + e.losses(gathered: gathered.base, store: store) }
        // reduce-scatter, then backward
        var offset = 0
        for (r, e) in engines.enumerated() {
            let n = scatterCounts[r]
            received.base.update(repeating: 0, count: n)
            for src in engines { Vector.add(src.packed.base + offset, received.base, n) }
            e.backward(dLocal: received.base, store: store)
            offset += n
        }
        // all-reduce
        if let summed {
            summed.base.update(repeating: 0, count: summed.count)
            for e in engines { Vector.add(e.grads.base + span.lowerBound, summed.base + span.lowerBound, span.count) }
        }
        return terms
    }
}
