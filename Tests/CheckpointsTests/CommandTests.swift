import XCTest
@testable import Checkpoints
import Model
import Tensors
import Spawn
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `proclip checkpoint inspect|verify|export` as users meet them.
final class CommandTests: XCTestCase {
    var dir: TempDir!
    override func setUp() { dir = TempDir() }
    override func tearDown() { dir.cleanUp() }

    func write(step: Int) throws -> String {
        let path = dir.sub(CheckpointDirectory.fileName(step: step, phaseEnd: false))
        try CheckpointFile.write(trainedStore(seed: UInt64(step)), meta: sampleMeta(step: step), to: path, producer: "t")
        try CheckpointDirectory(dir.path).setLatest(CheckpointDirectory.fileName(step: step, phaseEnd: false))
        return path
    }

    func testInspectPrintsMetadataAndTensorTable() throws {
        let path = try write(step: 120)
        let r = try runProcess(proclipExecutable, ["checkpoint", "inspect", path])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        // The header: one labelled row per field, holding the metadata's values.
        let rows = labelledRows(r.stdout)
        XCTAssertEqual(rows["checkpoint"], [path], r.stdout)
        let step = try XCTUnwrap(rows["step"]?.first, r.stdout)
        XCTAssertEqual(integers(in: step), [120, 1, 20], step)          // step, phase index, phase step
        XCTAssertTrue(step.contains("'contrast'"), step)
        let epoch = try XCTUnwrap(rows["epoch"]?.first, r.stdout)
        XCTAssertEqual(integers(in: epoch), [2, 7, 21], epoch)          // epoch, epoch step, optimizer step
        XCTAssertEqual(Set(rows["extra"] ?? []), ["lr_scale = 0.5", "note = a=b,c"], r.stdout)
        // The table: one row per tensor.
        let table = r.stdout.split(separator: "\n").drop { !$0.hasSuffix(" tensors:") }.dropFirst(2)
        XCTAssertEqual(table.count, 75, r.stdout)
        let row = r.stdout.split(separator: "\n").first { $0.contains("param/text.text_adaptor.0.fn.0.weight") }.map(String.init) ?? ""
        XCTAssertEqual(row.split(separator: " ", omittingEmptySubsequences: true),
                       ["param/text.text_adaptor.0.fn.0.weight", "F32", "[36,", "12]", "1728", "U8", "[4,", "36,", "12]"])
    }

    func testVerifyExitsZeroOnGoodAndOneWithOneLinePerProblem() throws {
        let good = try write(step: 10)
        let bad = try write(step: 20)
        let ok = try runProcess(proclipExecutable, ["checkpoint", "verify", good])
        XCTAssertEqual(ok.status, .exited(0), ok.stderr)
        XCTAssertTrue(ok.stdout.hasPrefix(good + ": ok"), ok.stdout)
        XCTAssertEqual(integers(in: ok.stdout.dropFirst(good.count)).prefix(2), [10, 75], ok.stdout)   // step, tensors
        try flipByte(bad, at: 300)
        let r = try runProcess(proclipExecutable, ["checkpoint", "verify", bad])
        XCTAssertEqual(r.status, .exited(1))
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix(bad + ": ") && r.stderr.contains("corrupt"), r.stderr)
        // A directory: each problem on its own line, the newest valid checkpoint named.
        let d = try runProcess(proclipExecutable, ["checkpoint", "verify", dir.path])
        XCTAssertEqual(d.status, .exited(1))
        XCTAssertEqual(d.stderr.split(separator: "\n").count, 1, d.stderr)
        XCTAssertEqual(d.stdout.split(separator: "\n").count, 1, d.stdout)
        XCTAssertTrue(d.stdout.hasPrefix(dir.path + ": ") && d.stdout.hasSuffix(good + "\n"), d.stdout)
        XCTAssertEqual(integers(in: d.stdout.dropFirst(dir.path.count).dropLast(good.count + 1)), [2, 1], d.stdout)  // checkpoints, problems
        let missing = try runProcess(proclipExecutable, ["checkpoint", "verify", dir.sub("none.lz4")])
        XCTAssertEqual(missing.status, .exited(1))
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.hasPrefix(dir.sub("none.lz4") + ": ") && missing.stderr.contains("missing"), missing.stderr)
    }

    func testExportOfADirectoryUsesTheNewestValidAndWarns() throws {
        let older = try write(step: 10)
        let newer = try write(step: 20)
        truncateFile(newer, to: 1000)
        let out = dir.sub("model.safetensors")
        let r = try runProcess(proclipExecutable, ["checkpoint", "export", dir.path, "--out", out])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(newer) && r.stderr.contains("truncated"), r.stderr)
        XCTAssertTrue(r.stdout.contains(older), r.stdout)
        let st = try SafeTensors(path: out)
        XCTAssertEqual(st.metadata[MetaKey.step], "10")
        XCTAssertEqual(st.tensors.count, 75)
        XCTAssertEqual(st.metadata["byte_shuffle"], "false")
        let store = trainedStore(seed: 10)
        let e = try XCTUnwrap(store.layout.entry(named: "text.text_adaptor.1.fn.3.weight"))
        XCTAssertEqual(try st.floats("exp_avg/" + e.name, shape: e.shape), store.values(e, in: store.expAvg))
    }

    func testHelpDescribesTheSubcommands() throws {
        let r = try runProcess(proclipExecutable, ["checkpoint", "--help"])
        XCTAssertEqual(r.status, .exited(0))
        for word in ["inspect", "verify", "export", "lz4 -d"] { XCTAssertTrue(r.stdout.contains(word), word) }
        XCTAssertFalse(r.stdout.contains("_write-test"))
        let e = try runProcess(proclipExecutable, ["checkpoint", "export", "--help"])
        XCTAssertTrue(e.stdout.contains("--inference-only"))
    }
}
