import XCTest
@testable import Checkpoints
import Model
import Tensors
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
        let r = try runCommand([proclip, "checkpoint", "inspect", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("step           120 — phase 1 'contrast' step 20"), r.stdout)
        XCTAssertTrue(r.stdout.contains("epoch          2, 7 steps into it; optimizer step 21"), r.stdout)
        XCTAssertTrue(r.stdout.contains("extra          note = a=b,c"), r.stdout)
        XCTAssertTrue(r.stdout.contains("75 tensors:"), r.stdout)
        let row = r.stdout.split(separator: "\n").first { $0.contains("param/text.text_adaptor.0.fn.0.weight") }.map(String.init) ?? ""
        XCTAssertEqual(row.split(separator: " ", omittingEmptySubsequences: true),
                       ["param/text.text_adaptor.0.fn.0.weight", "F32", "[36,", "12]", "1728", "U8", "[4,", "36,", "12]"])
    }

    func testVerifyExitsZeroOnGoodAndOneWithOneLinePerProblem() throws {
        let good = try write(step: 10)
        let bad = try write(step: 20)
        let ok = try runCommand([proclip, "checkpoint", "verify", good])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.hasPrefix("\(good): ok — step 10, 75 tensors"), ok.stdout)
        try flipByte(bad, at: 300)
        let r = try runCommand([proclip, "checkpoint", "verify", bad])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("\(bad): corrupt: "), r.stderr)
        // A directory: each problem on its own line, the newest valid checkpoint named.
        let d = try runCommand([proclip, "checkpoint", "verify", dir.path])
        XCTAssertEqual(d.status, 1)
        XCTAssertEqual(d.stderr.split(separator: "\n").count, 1, d.stderr)
        XCTAssertEqual(d.stdout, "\(dir.path): 2 checkpoints, 1 problem; newest valid: \(good)\n")
        let missing = try runCommand([proclip, "checkpoint", "verify", dir.sub("none.lz4")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "\(dir.sub("none.lz4")): missing\n")
    }

    func testExportOfADirectoryUsesTheNewestValidAndWarns() throws {
        let older = try write(step: 10)
        let newer = try write(step: 20)
        truncateFile(newer, to: 1000)
        let out = dir.sub("model.safetensors")
        let r = try runCommand([proclip, "checkpoint", "export", dir.path, "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("warning: \(newer): truncated"), r.stderr)
        XCTAssertTrue(r.stdout.contains("from step 10 of \(older)"), r.stdout)
        let st = try SafeTensors(path: out)
        XCTAssertEqual(st.tensors.count, 75)
        XCTAssertEqual(st.metadata["byte_shuffle"], "false")
        let store = trainedStore(seed: 10)
        let e = try XCTUnwrap(store.layout.entry(named: "text.text_adaptor.1.fn.3.weight"))
        XCTAssertEqual(try st.floats("exp_avg/" + e.name, shape: e.shape), store.values(e, in: store.expAvg))
    }

    func testHelpDescribesTheSubcommands() throws {
        let r = try runCommand([proclip, "checkpoint", "--help"])
        XCTAssertEqual(r.status, 0)
        for word in ["inspect", "verify", "export", "lz4 -d"] { XCTAssertTrue(r.stdout.contains(word), word) }
        XCTAssertFalse(r.stdout.contains("_write-test"))
        let e = try runCommand([proclip, "checkpoint", "export", "--help"])
        XCTAssertTrue(e.stdout.contains("--inference-only"))
    }
}
