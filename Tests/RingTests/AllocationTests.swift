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
        let allocations = allocationsWhileCounting(ranks: w) { who, mark in
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
            mark()
            for _ in 0..<5 { try round() }
            mark()
        }
        XCTAssertEqual(allocations, 0, "heap allocations during 5 steady-state rounds on 4 ranks")
    }

    /// Heap allocations anywhere in the process while `w` rank threads run the part of `body`
    /// between its two calls of `mark` (set-up and warm-up before the first; the threads wind
    /// down, which allocates, only once the count has stopped).
    func allocationsWhileCounting(
        ranks w: Int, _ body: @escaping @Sendable (_ rank: Int, _ mark: () -> Void) throws -> Void
    ) -> UInt64 {
        let gate = Gate(parties: w + 1)
        let allocations = Shared([UInt64(0)])
        let errors = runThreads(w + 1) { who in
            if who == w {  // the counting thread
                gate.wait()  // warm-up done on every rank
                alloc_counter_start()
                gate.wait()  // counted part done
                allocations.values[0] = alloc_counter_stop()
                gate.wait()  // only now may the ranks wind down
                return
            }
            var marks = 0
            try body(who) {
                marks += 1
                gate.wait()
                if marks == 2 { gate.wait() }
            }
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        return allocations.values[0]
    }
}

extension AllocationTests {
    /// Over ipc with shared-memory slots payloads bypass libzmq's buffers (a message holds a
    /// header and a 16-byte descriptor, both inside ZeroMQ's message objects): counted across
    /// the whole process, libzmq's I/O threads included, 5 all-reduces on 4 ranks (480 ring
    /// messages) allocate almost nothing — libzmq's queues take a new chunk now and then —
    /// while the same all-reduces with payloads in the messages allocate a buffer per message.
    func testSharedMemoryPayloadsBypassLibzmqBuffers() throws {
        let messages = 5 * 4 * 24  // per rank and all-reduce: 4 first sends, 12 + 8 forwards
        let shared = try countAllocations(slots: 32)
        let inline = try countAllocations(slots: 0)
        print("allocations over \(messages) ring messages: \(shared.count) with shared memory, \(inline.count) with payloads in messages")
        XCTAssertEqual(shared.paths, Array(repeating: "shared memory", count: 4))
        XCTAssertEqual(inline.paths, Array(repeating: "messages", count: 4))
        XCTAssertLessThan(shared.count, UInt64(messages / 20), "allocations with payloads in shared memory")
        XCTAssertGreaterThanOrEqual(inline.count, UInt64(messages), "allocations with payloads in messages")
    }

    /// Latency-bound collectives over the direct links (tcp) touch neither the heap nor libzmq:
    /// counted across the whole process, 50 rounds of a small all-reduce (recursive doubling)
    /// and a barrier on 4 ranks allocate nothing.
    func testDirectLinksDoNotAllocate() throws {
        try countDirectLinkAllocations(bind: { _ in "tcp://127.0.0.1:*" })
    }

    /// Over ipc the bulk exchanges pass payloads through shared memory.
    func testDirectLinksOverIpcDoNotAllocate() throws {
        let base = "/tmp/proclip-alloc-direct-\(getpid())"
        defer { for r in 0..<4 { RingListener.removeLeftovers(of: "ipc://\(base)-\(r)") } }
        try countDirectLinkAllocations(bind: { "ipc://\(base)-\($0)" })
    }

    func countDirectLinkAllocations(bind: (Int) -> String, file: StaticString = #filePath, line: UInt = #line) throws {
        let w = 4
        var options = RingOptions.with(segmentBytes: 16 << 10, timeout: 20)
        options.heartbeatMilliseconds = 0  // no ZeroMQ traffic of its own during the count
        let listeners = try (0..<w).map { try RingListener(bind: bind($0), options: options) }
        let ipc = bind(0).hasPrefix("ipc://")
        let endpoints = listeners.map(\.endpoint)
        let box = Shared(listeners.map { Optional($0) })
        let allocations = allocationsWhileCounting(ranks: w) { who, mark in
            let g = try RingGroup(listener: box.values[who]!, rank: who, worldSize: w, successor: endpoints[(who + 1) % w], generation: 1)
            defer { g.close() }
            XCTAssertEqual(g.sharesMemory, ipc, file: file, line: line)
            let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1024)
            // 1024 floats take the latency-bound path; 100,000 the bulk exchanges (25 segments per block).
            let large = UnsafeMutableBufferPointer<Float>.allocate(capacity: 100_000)
            defer { x.deallocate(); large.deallocate() }
            x.initialize(repeating: 1)
            large.initialize(repeating: 1)
            for _ in 0..<3 { try g.allReduce(x); try g.barrier(); try g.allReduce(large) }
            mark()
            for _ in 0..<50 { try g.allReduce(x); try g.barrier(); try g.allReduce(large) }
            mark()
            XCTAssertEqual(x[0], Float(pow(Double(w), 53)), "53 all-reduces of ones: 4^53, exact")
            XCTAssertEqual(large[99_999], Float(pow(Double(w), 53)))
        }
        XCTAssertEqual(allocations, 0, "heap allocations during 50 small and 50 bulk all-reduces and barriers on 4 ranks", file: file, line: line)
    }

    /// Heap allocations anywhere in the process during 5 steady-state all-reduces of 4 ranks
    /// joined over ipc, and each rank's payload path.
    func countAllocations(slots: Int) throws -> (count: UInt64, paths: [String]) {
        let w = 4, n = 60_000  // above the latency-bound path: the ring carries every payload
        var options = RingOptions.with(segmentBytes: 16 << 10, timeout: 20)
        options.directMaxWorld = 0
        options.smallAllReduceBytes = 64 << 10
        options.sharedMemorySlots = slots
        let base = "ipc:///tmp/proclip-alloc-test-\(getpid())-\(slots)"
        let listeners = try (0..<w).map { try RingListener(bind: "\(base)-\($0)", options: options) }
        let endpoints = listeners.map(\.endpoint)
        let box = Shared(listeners.map { Optional($0) })
        let paths = Shared([String](repeating: "", count: w))
        let allocations = allocationsWhileCounting(ranks: w) { who, mark in
            let g = try RingGroup(listener: box.values[who]!, rank: who, worldSize: w, successor: endpoints[(who + 1) % w], generation: 1)
            defer { g.close() }
            paths.values[who] = g.payloadPath
            let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
            defer { x.deallocate() }
            x.initialize(repeating: 1)
            for _ in 0..<3 { try g.allReduce(x) }
            mark()
            for _ in 0..<5 { try g.allReduce(x) }
            mark()
            try g.barrier()
        }
        return (allocations, paths.values)
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
