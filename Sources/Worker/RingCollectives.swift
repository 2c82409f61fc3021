import Ring
import Trainer

/// The step's collectives over a ring of workers.
final class RingCollectives: StepCollectives {
    let group: RingGroup

    init(group: RingGroup) { self.group = group }

    func allGather(local: UnsafeBufferPointer<Float>, counts: [Int], into: UnsafeMutableBufferPointer<Float>) throws {
        try group.allGather(local: local, counts: counts, into: into)
    }

    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try group.allReduce(buffer)
    }

    func beginStep(_ step: Int) { group.step = UInt64(step) }
}
