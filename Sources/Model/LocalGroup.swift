import Tensors

/// K workers simulated in one process: each has its own `StepEngine` (its rows, activations and
/// gradients) and the collectives are plain copies and sums in memory. With K = 1 it is the
/// single-process step; with K > 1 it checks that splitting the batch among owners leaves the
/// result unchanged (`proclip grad --workers K`).
public final class LocalGroup {
    public let engines: [StepEngine]
    private let gathered: Slab
    private let gatheredStats: Slab
    private let summed: Slab?
    private let span: Range<Int>

    public init(layout: ParameterLayout, settings: LossSettings, batch: Int, workers: Int) {
        engines = (0..<workers).map {
            StepEngine(layout: layout, settings: settings, ownership: Ownership(batch: batch, world: workers, rank: $0))
        }
        let e = engines[0]
        gathered = Slab(count: e.gatherCounts.reduce(0, +))
        gatheredStats = Slab(count: e.statsCounts.reduce(0, +))
        summed = workers > 1 ? Slab(count: layout.count) : nil
        span = layout.span(of: e.computedGroups)
    }

    /// The summed parameter gradients of the last `step`.
    public var grads: Slab { summed ?? engines[0].grads }

    /// One forward/backward of the whole batch (inputs already filled); returns the loss terms.
    public func step(store: ParameterStore) -> LossTerms {
        for e in engines { e.forward(store: store) }
        var at = gathered.base
        for e in engines {
            at.update(from: e.local.base, count: e.local.count)
            at += e.local.count
        }
        for e in engines { e.prepare(gathered: gathered.base, store: store) }
        var st = gatheredStats.base
        for e in engines {
            st.update(from: e.stats.base, count: e.stats.count)
            st += e.stats.count
        }
        var terms = LossTerms()
        for e in engines {
            terms = terms + e.losses(gatheredStats: gatheredStats.base, store: store)
            e.backward(store: store)
        }
        if let summed {
            summed.base.update(repeating: 0, count: summed.count)
            for e in engines { Vector.add(e.grads.base + span.lowerBound, summed.base + span.lowerBound, span.count) }
        }
        return terms
    }
}
