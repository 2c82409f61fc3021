import Foundation
import Ring
import Wire
import XCTest

/// Runs `body(rank, group)` for every rank of an in-memory ring, one thread per rank, and
/// returns each rank's error (nil when it succeeded). Fails the test if a rank hangs.
func runRing(
    _ world: Int, options: RingOptions = .fast, generation: UInt64 = 1, limit: Double = 120,
    file: StaticString = #filePath, line: UInt = #line,
    _ body: @escaping @Sendable (Int, RingGroup) throws -> Void
) -> [RingError?] {
    let ring = MemoryRing(worldSize: world)
    return runThreads(world, limit: limit, file: file, line: line) { rank in
        let group = try RingGroup(transport: ring.transport(rank: rank), generation: generation, options: options)
        try body(rank, group)
    }
}

/// Runs `body(rank)` on `count` threads and collects their errors.
func runThreads(
    _ count: Int, limit: Double = 120, file: StaticString = #filePath, line: UInt = #line,
    _ body: @escaping @Sendable (Int) throws -> Void
) -> [RingError?] {
    let results = ResultBox(count)
    let done = DispatchSemaphore(value: 0)
    for rank in 0..<count {
        let thread = Thread {
            do { try body(rank) } catch { results.set(rank, error as? RingError ?? .transport("\(error)")) }
            done.signal()
        }
        thread.stackSize = 1 << 22
        thread.start()
    }
    for _ in 0..<count {
        if done.wait(timeout: .now() + limit) == .timedOut {
            XCTFail("a rank did not finish within \(limit) s", file: file, line: line)
            break
        }
    }
    return results.values
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [RingError?]
    init(_ n: Int) { storage = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ e: RingError) { lock.lock(); storage[i] = e; lock.unlock() }
    var values: [RingError?] { lock.lock(); defer { lock.unlock() }; return storage }
}

/// Per-rank storage shared with rank threads (each rank touches only its own entries). Every
/// access holds a lock: rank threads writing their own entries at once still modify one array.
final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [T]
    init(_ values: [T]) { storage = values }

    var values: [T] {
        get {
            lock.lock()
            defer { lock.unlock() }
            return storage
        }
        _modify {
            lock.lock()
            defer { lock.unlock() }
            yield &storage
        }
    }
}

extension RingOptions {
    /// Small segments (many messages, exercising the pipeline) and short timeouts.
    static var fast: RingOptions {
        var o = RingOptions()
        o.segmentBytes = 256
        o.timeout = 20
        o.connectTimeout = 20
        return o
    }

    static func with(segmentBytes: Int, timeout: Double = 20) -> RingOptions {
        var o = RingOptions.fast
        o.segmentBytes = segmentBytes
        o.timeout = timeout
        return o
    }
}

/// Rank r's input: x[i] = (r + 1) · (1 + (i + r) mod 7), small integers, so sums are exact.
func rankInput(_ rank: Int, _ n: Int) -> [Float] {
    (0..<n).map { Float(rank + 1) * Float(1 + ($0 + rank) % 7) }
}

/// Σ over ranks of `rankInput`, element i.
func expectedSum(_ world: Int, _ i: Int) -> Float {
    var s: Float = 0
    for r in 0..<world { s += Float(r + 1) * Float(1 + (i + r) % 7) }
    return s
}

/// Index of the first element where `got` differs from `want`, with both values.
func firstMismatch(_ got: [Float], _ want: [Float]) -> String? {
    if got.count != want.count { return "count \(got.count) vs \(want.count)" }
    for i in 0..<got.count where got[i].bitPattern != want[i].bitPattern {
        return "element \(i): \(got[i]) vs \(want[i])"
    }
    return nil
}
