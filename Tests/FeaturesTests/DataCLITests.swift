import XCTest
@testable import Features
import Tensors
import Basics

/// `proclip synth`, `proclip data info` and `proclip data verify` as a user runs them.
final class DataCLITests: XCTestCase {
    /// The proclip executable `swift test` builds next to the test bundle.
    var proclip: String {
        let dir = Bundle.main.bundleURL.deletingLastPathComponent().path
        return Files.exists(dir + "/proclip") ? dir + "/proclip" : Bundle.main.bundleURL.path + "/proclip"
    }

    func testSynthThenInfoAndVerify() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        XCTAssertTrue(Files.exists(proclip), "no proclip executable at \(proclip)")
        var (status, out, err) = try runProcess([proclip, "synth", "--out", dir.sub("w"), "--pairs", "60", "--eval-pairs", "20",
                                                 "--seed", "3", "--shard-rows", "32", "--dtype", "float16"])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("simulation written — 60 train + 20 eval pairs in 3 shards"), out)
        (status, out, err) = try runProcess([proclip, "data", "info", dir.sub("w")])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("source       simulation (synthetic world, not real data)"), out)
        XCTAssertTrue(out.contains("variants     5: short_en, long_en, noisy_en, long_de, long_zh"), out)
        (status, out, err) = try runProcess([proclip, "data", "verify", dir.sub("w")])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains(": ok — 80 rows"), out)

        // Corrupt two files: one line each, then a count; exit status 1.
        let llm = dir.sub("w/train-00001/llm.npy")
        var bytes = try Files.read(llm)
        bytes.removeLast(6)
        try Files.writeAtomically(llm, bytes)
        Tree.remove(dir.sub("w/eval-00000"))
        (status, out, err) = try runProcess([proclip, "data", "verify", dir.sub("w")])
        XCTAssertEqual(status, 1)
        let lines = err.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, err)
        XCTAssertTrue(lines.contains("\(llm): file is \(bytes.count) bytes, manifest.json says \(bytes.count + 6)"), err)
        XCTAssertTrue(lines.contains("\(dir.sub("w/eval-00000")): missing: shard 'eval-00000' is listed in manifest.json"), err)
        XCTAssertEqual(lines.last, "\(dir.sub("w")): 2 problems")
        (status, _, err) = try runProcess([proclip, "data", "info", dir.sub("w")])
        XCTAssertEqual(status, 1)
        XCTAssertEqual(err.split(separator: "\n").count, 1, err)

        // An existing output directory is refused, untouched.
        (status, _, err) = try runProcess([proclip, "synth", "--out", dir.sub("w"), "--pairs", "10", "--seed", "1"])
        XCTAssertEqual(status, 1)
        XCTAssertEqual(err, "\(dir.sub("w")): already exists; remove it or choose another directory\n")
    }

    func testSynthHelpSaysSimulation() throws {
        let (status, out, _) = try runProcess([proclip, "synth", "--help"])
        XCTAssertEqual(status, 0)
        XCTAssertTrue(out.contains("a simulation, not real data"), out)
    }
}
