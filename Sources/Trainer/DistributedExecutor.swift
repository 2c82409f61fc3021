import Basics
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

/// All-reduces ranges of the gradient slab on another thread while backward goes on (the
/// ring's bucket reducer). Every rank submits the same ranges in the same order.
public protocol GradientReducer: AnyObject {
    func submit(_ range: Range<Int>) throws
    /// Waits until everything submitted is summed.
    func finish() throws
}

/// When a worker all-reduces gradient buckets during backward instead of the whole span after it.
public enum GradientOverlap: String, Sendable, CaseIterable {
    /// When the phase's gradients fill at least two buckets (`minimumBytes`).
    case auto
    case on
    case off

    /// Below this many gradient bytes overlap does not pay: one bucket would hold them all, and
    /// handing it to another thread costs more than it hides (the demo's 0.2 MB ran 8 % slower).
    public static let minimumBytes = 8 << 20

    /// Whether `engine`'s step should use a reducer that overlaps backward.
    public func applies(to engine: StepEngine) -> Bool {
        switch self {
        case .on: return true
        case .off: return false
        case .auto: return engine.layout.span(of: engine.computedGroups).count * 4 >= Self.minimumBytes
        }
    }
}

/// One worker's step of the global batch (docs/design.md §3): forward its rows, all-gather features,
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

    let reducer: GradientReducer?
    private var submitError: Error?

    /// With a `reducer`, each gradient range is all-reduced as soon as backward finishes it,
    /// overlapping the rest of backward; without, the computed span is all-reduced at the end.
    public init(engine: StepEngine, collectives: StepCollectives, reducer: GradientReducer? = nil) {
        self.engine = engine
        self.reducer = reducer
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
        let l = lossBuffer.base
        l[0] = Float(own.ins); l[1] = Float(own.str); l[2] = Float(own.clip)
        l[3] = Float(own.sdIns); l[4] = Float(own.sdStr); l[5] = Float(own.total)
        let reduce: Double
        if let reducer {
            let backwardStart = MonotonicClock.now()
            submitError = nil
            engine.backward(store: store, ready: self)
            if let e = submitError { throw e }
            t = MonotonicClock.now()
            try reducer.finish()
            // The all-reduce ran during backward; only the wait after it counts as communication
            // time, and the bandwidth figure is over the whole window (a lower bound).
            reduce = MonotonicClock.now() - backwardStart
        } else {
            engine.backward(store: store)
            t = MonotonicClock.now()
            try self.comm.allReduce(UnsafeMutableBufferPointer(start: engine.grads.base + span.lowerBound, count: span.count))
            reduce = MonotonicClock.now() - t
        }
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

extension DistributedExecutor: GradientsReady {
    public func ready(_ range: Range<Int>) {
        guard submitError == nil, let reducer else { return }
        do { try reducer.submit(range) } catch { submitError = error }
    }
}
