import Ring
import Tensors
import Model
import Trainer

/// The step's collectives over a ring of workers.
public final class RingCollectives: StepCollectives {
    public let group: RingGroup

    public init(group: RingGroup) { self.group = group }

    public func allGather(local: UnsafeBufferPointer<Float>, counts: [Int], into: UnsafeMutableBufferPointer<Float>) throws {
        try group.allGather(local: local, counts: counts, into: into)
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try group.allReduce(buffer)
    }

    public func beginStep(_ step: Int) { group.step = UInt64(step) }
}

/// The ring's bucket reducer as the step's gradient reducer. Between steps (after `finish`)
/// its communication thread is idle, so the step's all-gathers may use the group on the
/// caller's thread; `close()` (also on deinit) hands the group back for good.
public final class RingGradientReducer: GradientReducer {
    let reducer: BucketAllReducer
    private var closed = false

    public init(group: RingGroup, gradients: Slab, bucketBytes: Int = 4 << 20) throws {
        reducer = try BucketAllReducer(group: group, buffer: gradients.buffer, bucketBytes: bucketBytes)
    }

    public func submit(_ range: Range<Int>) throws { try reducer.submit(range) }
    public func finish() throws { try reducer.finish() }

    public func close() {
        if closed { return }
        closed = true
        reducer.close()
    }

    deinit { close() }

    /// The reducer of a new phase's `engine` (nil: its gradients are all-reduced after backward,
    /// by one call), after closing `current`, the previous phase's, which is done with the group.
    public static func next(
        replacing current: inout RingGradientReducer?, group: RingGroup, engine: StepEngine, overlap: GradientOverlap
    ) throws -> RingGradientReducer? {
        current?.close()
        current = group.worldSize > 1 && overlap.applies(to: engine) ? try RingGradientReducer(group: group, gradients: engine.grads) : nil
        return current
    }
}
