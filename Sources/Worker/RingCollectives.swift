import Ring
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
