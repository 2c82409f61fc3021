import Basics
import Foundation
import Tensors
import XCTest

final class SafeTensorsTests: XCTestCase {
    func sample() -> [UInt8] {
        var w = SafeTensorsWriter()
        w.metadata["note"] = "a \"quoted\"\nline"
        w.add("a", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        w.add("s", shape: [], floats: [7])
        w.add("i", shape: [3], int32s: [-1, 0, 5])
        return w.serialize()
    }

    func testRoundTrip() throws {
        let f = try SafeTensors(bytes: sample(), source: "mem")
        XCTAssertEqual(try f.floats("a", shape: [2, 3]), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try f.floats("s", shape: []), [7])
        XCTAssertEqual(try f.int32s("i"), [-1, 0, 5])
        XCTAssertEqual(f.metadata["note"], "a \"quoted\"\nline")
        XCTAssertEqual(try f.info("a").range.count, 24)
    }

    func problem(_ bytes: [UInt8]) -> String {
        do {
            _ = try SafeTensors(bytes: bytes, source: "f.safetensors")
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testRefusesDamagedFiles() {
        let good = sample()
        XCTAssertTrue(problem(Array(good.prefix(5))).contains("at least 8"))
        let truncated = problem(Array(good.dropLast(4)))
        XCTAssertTrue(truncated.contains("past the end") || truncated.contains("larger than the file"), truncated)
        var huge = good
        huge[7] = 0x7F
        XCTAssertTrue(problem(huge).contains("header length"))
        var garbled = good
        garbled[8] = UInt8(ascii: "!")
        XCTAssertTrue(problem(garbled).contains("JSON"))
        for p in [problem(Array(good.prefix(5))), problem(garbled)] {
            XCTAssertTrue(p.hasPrefix("f.safetensors: "), p)
            XCTAssertFalse(p.contains("\n"))
        }
    }

    func testRefusesWrongDtypeShapeAndNaN() throws {
        var w = SafeTensorsWriter()
        w.add("x", shape: [2], floats: [1, .nan])
        let f = try SafeTensors(bytes: w.serialize(), source: "f")
        XCTAssertThrowsError(try f.floats("x")) { XCTAssertTrue("\($0)".contains("non-finite value nan at index [1]"), "\($0)") }
        XCTAssertThrowsError(try f.floats("x", shape: [3], allowNonFinite: true)) { XCTAssertTrue("\($0)".contains("expected shape [3]")) }
        XCTAssertThrowsError(try f.int32s("x")) { XCTAssertTrue("\($0)".contains("expected dtype I32")) }
        XCTAssertThrowsError(try f.floats("y")) { XCTAssertTrue("\($0)".contains("'y' is missing")) }
    }

    func testAtomicWriteLeavesNoTemporaryFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(getpid())").path
        try Files.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Files.writeAtomically(dir + "/x.bin", [1, 2, 3])
        try Files.writeAtomically(dir + "/x.bin", [4, 5])
        XCTAssertEqual(try Files.read(dir + "/x.bin"), [4, 5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["x.bin"])
        XCTAssertThrowsError(try Files.writeAtomically(dir + "/missing/x.bin", [1]))
    }
}

final class HashAndRandomTests: XCTestCase {
    func testFNV1aKnownValues() {
        XCTAssertEqual(FNV1a64.hex(""), "cbf29ce484222325")
        XCTAssertEqual(FNV1a64.hex("a"), "af63dc4c8601ec8c")
        XCTAssertEqual(FNV1a64.hex("foobar"), "85944171f73967e8")
    }

    func testSplitMixIsDeterministicAndUniform() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
        var r = SplitMix64(seed: 1)
        let xs = (0..<20000).map { _ in r.uniform() }
        XCTAssertTrue(xs.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(xs.reduce(0, +) / Double(xs.count), 0.5, accuracy: 0.01)
        let ns = (0..<20000).map { _ in r.normal() }
        let mean = ns.reduce(0, +) / Double(ns.count)
        let variance = ns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(ns.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
        var counts = [Int](repeating: 0, count: 3)
        for _ in 0..<3000 { counts[r.below(3)] += 1 }
        XCTAssertTrue(counts.allSatisfy { $0 > 900 && $0 < 1100 }, "\(counts)")
    }

    func testParallelBlocksCoverEveryElementOnce() {
        for threads in [1, 2, 3] {
            Parallel.threads = threads
            defer { Parallel.threads = 1 }
            let n = 100_003
            let marks = UnsafeMutablePointer<Int32>.allocate(capacity: n)
            marks.initialize(repeating: 0, count: n)
            defer { marks.deallocate() }
            struct Mark: BlockJob {
                let marks: UnsafeMutablePointer<Int32>
                func run(block: Int, _ lo: Int, _ hi: Int) { for i in lo..<hi { marks[i] += 1 } }
            }
            Parallel.forBlocks(n, size: 1000, Mark(marks: marks))
            XCTAssertTrue((0..<n).allSatisfy { marks[$0] == 1 }, "threads \(threads)")
        }
    }
}
