import CAllocCounter
import Foundation
import Ring
import Wire
import XCTest

/// Steady-state collectives allocate nothing (in-memory transport: the group and the algorithms
/// themselves; libzmq's own per-message buffers are outside this count by construction).
final class AllocationTests: XCTestCase {
    func testSteadyStateCollectivesDoNotAllocate() {
        let w = 4, n = 10_000
        let counts = [3000, 0, 4000, 3000]
        let gate = Gate(parties: w + 1)
        let allocations = Shared([UInt64(0)])
        let errors = runThreads(w + 1) { who in
            if who == w {  // the counting thread
                gate.wait()  // warm-up done on every rank
                alloc_counter_start()
                gate.wait()  // counted rounds done
                allocations.values[0] = alloc_counter_stop()
                gate.wait()  // only now may the ranks wind down (thread exit allocates)
                return
            }
            let ring = SharedRing.ring
            let g = try RingGroup(transport: ring.transport(rank: who), generation: 1, options: .with(segmentBytes: 4096))
            let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
            let mine = UnsafeMutableBufferPointer<Float>.allocate(capacity: counts[who])
            defer { x.deallocate(); mine.deallocate() }
            x.initialize(repeating: 1)
            func round() throws {
                try g.allReduce(x)
                try g.reduceScatter(input: UnsafeBufferPointer(x), counts: counts, into: mine)
                try g.allGather(local: UnsafeBufferPointer(mine), counts: counts, into: x)
                try g.broadcast(x, root: 2)
                try g.barrier()
            }
            for _ in 0..<3 { try round() }
            gate.wait()
            for _ in 0..<5 { try round() }
            gate.wait()
            gate.wait()
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        XCTAssertEqual(allocations.values[0], 0, "heap allocations during 5 steady-state rounds on 4 ranks")
    }
}

enum SharedRing {
    static let ring: MemoryRing = {
        let ring = MemoryRing(worldSize: 4)
        ring.reserve(messages: 512, bytes: 64 << 10)  // the largest message: a 40 kB direct all-reduce
        return ring
    }()
}

/// A reusable barrier for test threads (pthread_barrier: no allocation when waiting).
final class Gate: @unchecked Sendable {
    private let barrier = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    init(parties: Int) { pthread_barrier_init(barrier, nil, UInt32(parties)) }
    deinit { pthread_barrier_destroy(barrier); barrier.deallocate() }
    func wait() { pthread_barrier_wait(barrier) }
}
