import Model
import Tensors

/// The collectives a distributed step needs (a ring of workers implements them; see the Worker
/// module). Counts are floats per rank, in rank order.
public protocol StepCollectives: AnyObject {
    /// Concatenates every rank's `local` (rank order) into `into`.
    func allGather(local: UnsafeBufferPointer<Float>, counts: [Int], into: UnsafeMutableBufferPointer<Float>) throws
    /// Sums `buffer` over all ranks, in place, bit-identically on every rank.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// The collectives that follow belong to global step `step`.
    func beginStep(_ step: Int)
}

/// One worker's step of the global batch (DESIGN §3): forward its rows, all-gather features,
/// (contrast) all-gather the log-sum-exps, owned losses and own-row gradients, backward, all-reduce
/// the gradients of the phase's computed span and the loss terms. Every rank ends with the same
/// summed gradients and loss terms, so every rank takes the same optimizer step.
public final class DistributedExecutor: StepExecutor {
    public let engine: StepEngine
    public let engines: [StepEngine]
    let comm: StepCollectives
    let gathered: Slab
    let gatheredStats: Slab
    let lossBuffer: Slab
    let gatherCounts: [Int]
    let statsCounts: [Int]
    let span: Range<Int>
    /// Seconds spent in collectives and in computation over the last step, and bytes all-reduced.
    public private(set) var lastCommSeconds = 0.0
    public private(set) var lastComputeSeconds = 0.0
    public private(set) var lastReducedBytes = 0
    public private(set) var lastReduceSeconds = 0.0

    public init(engine: StepEngine, collectives: StepCollectives) {
        self.engine = engine
        engines = [engine]
        comm = collectives
        gatherCounts = engine.gatherCounts
        statsCounts = engine.statsCounts
        gathered = Slab(count: gatherCounts.reduce(0, +))
        gatheredStats = Slab(count: statsCounts.reduce(0, +))
        lossBuffer = Slab(count: 6)
        span = engine.layout.span(of: engine.computedGroups)
    }

    public var grads: Slab { engine.grads }

    public func beginStep(_ step: Int) { comm.beginStep(step) }

    public func run(store: ParameterStore) throws -> LossTerms {
        var comm = 0.0
        let t0 = MonotonicClock.now()
        engine.forward(store: store)
        var t = MonotonicClock.now()
        try self.comm.allGather(local: UnsafeBufferPointer(engine.local.buffer), counts: gatherCounts, into: gathered.buffer)
        comm += MonotonicClock.now() - t
        engine.prepare(gathered: gathered.base, store: store)
        if engine.settings.kind == .contrast {
            t = MonotonicClock.now()
            try self.comm.allGather(local: UnsafeBufferPointer(engine.stats.buffer), counts: statsCounts, into: gatheredStats.buffer)
            comm += MonotonicClock.now() - t
        }
        let own = engine.losses(gatheredStats: gatheredStats.base, store: store)
        engine.backward(store: store)
        let l = lossBuffer.base
        l[0] = Float(own.ins); l[1] = Float(own.str); l[2] = Float(own.clip)
        l[3] = Float(own.sdIns); l[4] = Float(own.sdStr); l[5] = Float(own.total)
        t = MonotonicClock.now()
        try self.comm.allReduce(UnsafeMutableBufferPointer(start: engine.grads.base + span.lowerBound, count: span.count))
        let reduce = MonotonicClock.now() - t
        try self.comm.allReduce(lossBuffer.buffer)
        comm += MonotonicClock.now() - t
        lastReducedBytes = span.count * 4
        lastReduceSeconds = reduce
        lastCommSeconds = comm
        lastComputeSeconds = MonotonicClock.now() - t0 - comm
        var terms = LossTerms()
        terms.ins = Double(l[0]); terms.str = Double(l[1]); terms.clip = Double(l[2])
        terms.sdIns = Double(l[3]); terms.sdStr = Double(l[4]); terms.total = Double(l[5])
        return terms
    }
}
