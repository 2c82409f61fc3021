import Foundation
@testable import Ring
import XCTest

/// Ring payloads in shared memory between ranks joined over ipc.
final class SharedMemoryTests: XCTestCase {
    /// The endpoints the last `runIpc` bound.
    var endpoints: [String] = []

    /// Ranks on ipc endpoints, a thread each, run `body`; returns each rank's error.
    func runIpc(_ w: Int, _ options: RingOptions, _ body: @escaping @Sendable (Int, RingGroup, RingListener) throws -> Void) throws -> [RingError?] {
        let base = "ipc:///tmp/proclip-shm-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let listeners = try (0..<w).map { try RingListener(bind: "\(base)-\($0)", options: options) }
        let endpoints = listeners.map(\.endpoint)
        self.endpoints = endpoints
        let box = Shared(listeners.map { Optional($0) })
        return runThreads(w) { r in
            let listener = box.values[r]!
            let g = try RingGroup(listener: listener, rank: r, worldSize: w, successor: endpoints[(r + 1) % w], generation: 3)
            defer { g.close() }
            try body(r, g, listener)
        }
    }

    /// Few slots and small segments: most of a large block's first step finds every slot taken
    /// and travels inside messages, interleaved with payloads in slots. Results stay exact, in
    /// a ring-only group (token round at hello) and with direct connections.
    func testAllReduceExactWhenSlotsRunOut() throws {
        for directMaxWorld in [0, 16] {
            var options = RingOptions.with(segmentBytes: 4096, timeout: 20)
            options.sharedMemorySlots = 3
            options.directMaxWorld = directMaxWorld
            let w = 4, counts = [0, 1, 3, 5, 1031, 100_003]
            let out = Shared([[[Float]]](repeating: [], count: w))
            let paths = Shared([String](repeating: "", count: w))
            let errors = try runIpc(w, options) { r, g, _ in
                paths.values[r] = g.payloadPath
                for n in counts {
                    var x = rankInput(r, n)
                    try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
                    out.values[r].append(x)
                }
                // Reduce-scatter and all-gather forward payloads out of slots as well.
                var y = rankInput(r, 40_000), part = [Float](repeating: 0, count: 10_000)
                try y.withUnsafeBufferPointer { input in
                    try part.withUnsafeMutableBufferPointer { try g.reduceScatter(input: input, counts: [10_000, 10_000, 10_000, 10_000], into: $0) }
                }
                out.values[r].append(part)
            }
            XCTAssertEqual(errors.compactMap { $0 }, [], "direct max world \(directMaxWorld)")
            XCTAssertEqual(paths.values, Array(repeating: "shared memory", count: w))
            for r in 0..<w {
                for (k, n) in counts.enumerated() {
                    XCTAssertNil(firstMismatch(out.values[r][k], (0..<n).map { expectedSum(w, $0) }), "rank \(r), \(n) floats")
                }
                let block = (r * 10_000)..<((r + 1) * 10_000)
                XCTAssertNil(firstMismatch(out.values[r][counts.count], block.map { expectedSum(w, $0) }), "rank \(r) reduce-scatter")
            }
        }
    }

    /// No slots configured: payloads travel in messages, same results; no segment is left in
    /// /dev/shm after the groups close.
    func testWithoutSlotsPayloadsTravelInMessages() throws {
        var options = RingOptions.with(segmentBytes: 4096, timeout: 20)
        options.sharedMemorySlots = 0
        let w = 3
        let out = Shared([[Float]](repeating: [], count: w))
        let paths = Shared([String](repeating: "", count: w))
        let errors = try runIpc(w, options) { r, g, listener in
            XCTAssertNil(listener.sharedMemoryProblem)
            paths.values[r] = g.payloadPath
            var x = rankInput(r, 30_000)
            try x.withUnsafeMutableBufferPointer { try g.allReduce($0) }
            out.values[r] = x
        }
        XCTAssertEqual(errors.compactMap { $0 }, [])
        XCTAssertEqual(paths.values, Array(repeating: "messages", count: w))
        for r in 0..<w { XCTAssertNil(firstMismatch(out.values[r], (0..<30_000).map { expectedSum(w, $0) })) }
        // Only this test's names: other processes on the machine may hold slots of their own.
        let ours = Set(endpoints.map { String(SharedSlots.name(for: $0).dropFirst()) })
        let left = try FileManager.default.contentsOfDirectory(atPath: "/dev/shm").filter { ours.contains($0) }
        XCTAssertEqual(left, [])
    }

    /// The pool's own checks: FIFO slots, a full pool refuses instead of waiting, descriptors
    /// of another pool, out of order or oversized are protocol violations; the name is gone once
    /// the sender has attached and a payload arrived.
    func testSlotsAreHandedOutInOrderAndDescriptorsAreChecked() throws {
        let name = SharedSlots.name(for: "ipc:///tmp/proclip-shm-unit-\(getpid())")
        let receiver = try SharedSlots(creating: name, slots: 2, slotBytes: 100)
        XCTAssertEqual(receiver.slotBytes, 4096)
        let sender = try SharedSlots(attaching: name)
        XCTAssertEqual(sender.nonce, receiver.nonce)
        var descriptors = [[UInt8]](repeating: [UInt8](repeating: 0, count: SharedSlots.descriptorBytes), count: 3)
        let payloads: [[Float]] = [[1, 2, 3], [4, 5], [6]]
        var accepted: [Bool] = []
        for k in 0..<3 {
            accepted.append(payloads[k].withUnsafeBytes { bytes in
                descriptors[k].withUnsafeMutableBytes { sender.put(bytes, descriptor: $0.baseAddress!) }
            })
        }
        XCTAssertEqual(accepted, [true, true, false], "two slots: the third payload must go in its message")
        // Slot 1's descriptor before slot 0's is refused.
        XCTAssertThrowsError(try descriptors[1].withUnsafeBytes { try receiver.payload($0) })
        let first = try descriptors[0].withUnsafeBytes { try receiver.payload($0) }
        XCTAssertEqual(Array(first.bindMemory(to: Float.self)), [1, 2, 3])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/shm" + name), "unlinked once the sender attached")
        receiver.release()
        let second = try descriptors[1].withUnsafeBytes { try receiver.payload($0) }
        XCTAssertEqual(Array(second.bindMemory(to: Float.self)), [4, 5])
        receiver.release()
        // Released slots are taken again; a forged nonce or size is refused.
        let again = [Float](repeating: 7, count: 4).withUnsafeBytes { bytes in
            descriptors[2].withUnsafeMutableBytes { sender.put(bytes, descriptor: $0.baseAddress!) }
        }
        XCTAssertTrue(again)
        var forged = descriptors[2]
        forged[0] ^= 1
        XCTAssertThrowsError(try forged.withUnsafeBytes { try receiver.payload($0) })
        forged = descriptors[2]
        forged[13] = 0x10  // 4096 + … bytes
        XCTAssertThrowsError(try forged.withUnsafeBytes { try receiver.payload($0) })
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 8).withUnsafeBytes { try receiver.payload($0) })
        XCTAssertEqual(Array(try descriptors[2].withUnsafeBytes { try receiver.payload($0) }.bindMemory(to: Float.self)), [7, 7, 7, 7])
    }
}
