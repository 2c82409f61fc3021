import XCTest
@testable import Features
import Tensors
import Basics
import Spawn
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Scripts/extract_features.py writes datasets proclip accepts, resumes after an interruption, and
/// runs its real (open_clip + LLM) path where those packages are installed — or, where they are
/// not, refuses with one line naming the missing package and writes nothing.
final class ExtractFeaturesTests: XCTestCase {
    let script = repositoryRoot + "/Scripts/extract_features.py"

    private func makeCSV(_ dir: TempDir) throws -> String {
        try Files.makeDirectories(dir.sub("in/imgs"))
        for i in 0..<5 {
            try Files.writeAtomically(dir.sub("in/imgs/im\(i).png"), (0..<(40 + i)).map { UInt8(truncatingIfNeeded: $0 * 7 + i) })
        }
        let csv = """
            image,short_en,long_en
            imgs/im0.png,a dog,"a dog, on a ""red"" mat"
            imgs/im1.png,a cat,a cat on a sofa with a ball
            imgs/im2.png,a car,a car in the rain near a shop
            imgs/im3.png,a tree,a tall tree by a lake
            imgs/im4.png,a cup,a cup of tea on a desk

            """
        try Files.writeAtomically(dir.sub("in/d.csv"), Array(csv.utf8))
        try Files.writeAtomically(dir.sub("in/labels.txt"), Array("dog\ncat\ncup\n".utf8))
        return dir.sub("in/d.csv")
    }

    func testHashBackendOutputVerifiesAndResumes() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let csv = try makeCSV(dir)
        let args = [script, "--csv", csv, "--caption-columns", "short_en,long_en", "--out", dir.sub("out"),
                    "--backend", "hash", "--shard-rows", "2", "--eval-rows", "1", "--dtype", "float16",
                    "--prompts", dir.sub("in/labels.txt")]
        let first = try runProcess("python3", args)
        XCTAssertEqual(first.status, .exited(0), first.stdout + first.stderr)
        let report = DatasetVerifier.verify(dir.sub("out"))
        XCTAssertEqual(report.problems, [])
        let ds = try FeatureDataset.open(dir.sub("out"))
        XCTAssertEqual(ds.manifest.variants, ["short_en", "long_en"])
        XCTAssertEqual(ds.manifest.shards.map(\.name), ["train-00000", "train-00001", "eval-00000"])
        XCTAssertEqual(ds.indices(of: .eval), [4])
        XCTAssertEqual(ds.manifest.dtype, .float16)
        XCTAssertEqual(ds.prompts?.labels, ["dog", "cat", "cup"])
        XCTAssertEqual(ds.manifest.source?["kind"], .string("test-hash-embedder"))
        let written = try treeContents(dir.sub("out"))
        let finishedShard = try fileIDs(dir.sub("out/train-00000"))

        // Interrupted after the first shard: the manifest and the later shards are gone.
        Tree.remove(dir.sub("out/manifest.json"))
        Tree.remove(dir.sub("out/train-00001"))
        Tree.remove(dir.sub("out/eval-00000"))
        try Files.makeDirectories(dir.sub("out/train-00001.tmp-99999"))  // a half-written shard
        try Files.writeAtomically(dir.sub("out/train-00001.tmp-99999/image.npy"), [1, 2, 3])
        let resumed = try runProcess("python3", args)
        XCTAssertEqual(resumed.status, .exited(0), resumed.stdout + resumed.stderr)
        XCTAssertEqual(try fileIDs(dir.sub("out/train-00000")), finishedShard, "the finished shard is skipped, not rewritten")
        XCTAssertEqual(try treeContents(dir.sub("out")), written)

        // Other options into the same directory are refused with one line naming the run's state
        // file, and change nothing.
        let refused = try runProcess("python3", args.map { $0 == "float16" ? "float32" : $0 })
        XCTAssertEqual(refused.status, .exited(2))
        XCTAssertEqual(refused.stderr.filter { $0 == "\n" }.count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains(dir.sub("out/extract-state.json")), refused.stderr)
        XCTAssertEqual(try treeContents(dir.sub("out")), written)
    }

    func testImageFolderWithSidecars() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        try Files.makeDirectories(dir.sub("imgs"))
        for i in 0..<3 {
            try Files.writeAtomically(dir.sub("imgs/p\(i).jpg"), [UInt8(i), 1, 2, 3])
            try Files.writeAtomically(dir.sub("imgs/p\(i).txt"), Array("short \(i)\na much longer caption number \(i)\n".utf8))
        }
        let r = try runProcess("python3", [script, "--image-dir", dir.sub("imgs"), "--variants", "short_en,long_en",
                                    "--out", dir.sub("out"), "--backend", "hash", "--dtype", "float32"])
        XCTAssertEqual(r.status, .exited(0), r.stdout + r.stderr)
        XCTAssertEqual(DatasetVerifier.verify(dir.sub("out")).problems, [])
        XCTAssertEqual(try FeatureDataset.open(dir.sub("out")).indices(of: .train), [0, 1, 2])
        // A missing sidecar is one line naming the image.
        Tree.remove(dir.sub("imgs/p1.txt"))
        let missing = try runProcess("python3", [script, "--image-dir", dir.sub("imgs"), "--out", dir.sub("out2"), "--backend", "hash"])
        XCTAssertEqual(missing.status, .exited(2))
        XCTAssertTrue(missing.stderr.contains(dir.sub("imgs/p1.jpg")), missing.stderr)
        XCTAssertEqual(missing.stderr.filter { $0 == "\n" }.count, 1)
        XCTAssertFalse(Files.exists(dir.sub("out2/manifest.json")))
    }

    func testRealBackend() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let packages = ["torch", "open_clip", "transformers", "PIL"]
        if try runProcess("python3", ["-c", "import " + packages.joined(separator: ", ")]).status == .exited(0) {
            // The real path: open_clip with random weights, a tiny random BERT (mean pooling); no download.
            let made = try runProcess("python3", [repositoryRoot + "/Tests/Python/make_tiny_inputs.py", dir.sub("in")])
            XCTAssertEqual(made.status, .exited(0), made.stdout + made.stderr)
            let r = try runProcess("python3", [script, "--csv", dir.sub("in/d.csv"), "--caption-columns", "short_en,long_en",
                                        "--out", dir.sub("out"), "--backend", "real", "--clip-model", "ViT-B-32",
                                        "--clip-pretrained", "", "--llm-backend", "hf", "--llm-model", dir.sub("in/tiny-bert"),
                                        "--eval-rows", "1", "--batch-size", "2"])
            XCTAssertEqual(r.status, .exited(0), r.stdout + r.stderr)
            XCTAssertEqual(DatasetVerifier.verify(dir.sub("out")).problems, [])
            let ds = try FeatureDataset.open(dir.sub("out"))
            XCTAssertEqual(ds.dEmbed, 512)
            XCTAssertEqual(ds.dLLM, 32)
        } else {
            // Without the packages: one line naming what to install, and no output at all.
            let csv = try makeCSV(dir)
            let r = try runProcess("python3", [script, "--csv", csv, "--caption-columns", "short_en,long_en",
                                        "--out", dir.sub("out"), "--backend", "real"])
            XCTAssertEqual(r.status, .exited(2))
            XCTAssertTrue(r.stderr.contains("--backend real"), r.stderr)
            XCTAssertTrue(packages.contains { r.stderr.contains("'\($0)'") }, "names the missing package: \(r.stderr)")
            XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, r.stderr)
            XCTAssertFalse(Files.exists(dir.sub("out")))
        }
    }
}

/// Each file's (device, inode, modification time) under `dir`, by name: equal when no file was
/// replaced or written.
private func fileIDs(_ dir: String) throws -> [String: [Int]] {
    var ids: [String: [Int]] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
        var st = stat()
        guard stat(dir + "/" + name, &st) == 0 else { throw FileError(dir + "/" + name, "cannot stat") }
        ids[name] = [Int(st.st_dev), Int(st.st_ino), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)]
    }
    return ids
}
