import XCTest
@testable import Features
import Tensors
import Basics
import Spawn
import TestSupport

/// `proclip synth`, `proclip data info` and `proclip data verify` as a user runs them.
final class DataCLITests: XCTestCase {
    func testSynthThenInfoAndVerify() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let synth = try runProcess(proclipExecutable, ["synth", "--out", dir.sub("w"), "--pairs", "60", "--eval-pairs", "20",
                                                "--seed", "3", "--shard-rows", "32", "--dtype", "float16"])
        XCTAssertEqual(synth.status, .exited(0), synth.stderr)
        XCTAssertTrue(synth.stdout.hasPrefix(dir.sub("w") + ": "), synth.stdout)
        let m = try FeatureDataset.open(dir.sub("w")).manifest
        XCTAssertEqual([m.rows(in: .train), m.rows(in: .eval), m.shards.count], [60, 20, 3])
        XCTAssertEqual(m.dtype, .float16)
        XCTAssertEqual(m.variants, ["short_en", "long_en", "noisy_en", "long_de", "long_zh"])
        XCTAssertEqual(m.source?["kind"], .string("simulation"))

        // info: the manifest's source, variants and row counts.
        let info = try runProcess(proclipExecutable, ["data", "info", dir.sub("w")])
        XCTAssertEqual(info.status, .exited(0), info.stderr)
        let rows = labelledRows(info.stdout)
        XCTAssertEqual(rows["source"]?.first?.split(separator: " ").first, "simulation", info.stdout)
        let variants = try XCTUnwrap(rows["variants"]?.first, info.stdout)
        XCTAssertEqual(integers(in: variants), [5], variants)
        for v in m.variants { XCTAssertTrue(variants.contains(v), variants) }
        XCTAssertEqual(integers(in: try XCTUnwrap(rows["rows"]?.first, info.stdout)), [80, 60, 20, 3], info.stdout)  // all, train, eval, shards

        let verified = try runProcess(proclipExecutable, ["data", "verify", dir.sub("w")])
        XCTAssertEqual(verified.status, .exited(0), verified.stderr)
        XCTAssertTrue(verified.stdout.hasPrefix(dir.sub("w") + ": ok"), verified.stdout)
        XCTAssertEqual(integers(in: verified.stdout.dropFirst(dir.sub("w").count)).first, 80, verified.stdout)
        XCTAssertTrue(verified.stdout.contains(m.contentHash), verified.stdout)

        // Corrupt two files: one line each naming the file, then a count; exit status 1.
        let llm = dir.sub("w/train-00001/llm.npy")
        var bytes = try Files.read(llm)
        bytes.removeLast(6)
        try Files.writeAtomically(llm, bytes)
        Tree.remove(dir.sub("w/eval-00000"))
        let corrupt = try runProcess(proclipExecutable, ["data", "verify", dir.sub("w")])
        XCTAssertEqual(corrupt.status, .exited(1))
        let lines = corrupt.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, corrupt.stderr)
        let short = try XCTUnwrap(lines.first { $0.hasPrefix(llm + ": ") }, corrupt.stderr)
        XCTAssertEqual(integers(in: short.dropFirst(llm.count)), [bytes.count, bytes.count + 6], short)  // the file's size, the manifest's
        let missing = try XCTUnwrap(lines.first { $0.hasPrefix(dir.sub("w/eval-00000") + ": ") }, corrupt.stderr)
        XCTAssertTrue(missing.contains("missing"), missing)
        XCTAssertTrue(lines.last?.hasPrefix(dir.sub("w") + ": ") == true, corrupt.stderr)
        XCTAssertEqual(lines.last.map { integers(in: $0.dropFirst(dir.sub("w").count)) }, [2], corrupt.stderr)
        let broken = try runProcess(proclipExecutable, ["data", "info", dir.sub("w")])
        XCTAssertEqual(broken.status, .exited(1))
        XCTAssertEqual(broken.stderr.split(separator: "\n").count, 1, broken.stderr)

        // An existing output directory is refused, untouched.
        let before = try treeContents(dir.sub("w"))
        let again = try runProcess(proclipExecutable, ["synth", "--out", dir.sub("w"), "--pairs", "10", "--seed", "1"])
        XCTAssertEqual(again.status, .exited(1))
        XCTAssertEqual(again.stderr.split(separator: "\n").count, 1, again.stderr)
        XCTAssertTrue(again.stderr.hasPrefix(dir.sub("w") + ": "), again.stderr)
        XCTAssertEqual(try treeContents(dir.sub("w")), before)
    }

    func testSynthHelpSaysSimulation() throws {
        let help = try runProcess(proclipExecutable, ["synth", "--help"])
        XCTAssertEqual(help.status, .exited(0))
        XCTAssertTrue(help.stdout.contains("simulation"), help.stdout)
    }
}
