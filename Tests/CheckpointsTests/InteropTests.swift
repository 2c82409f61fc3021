import XCTest
@testable import Checkpoints
import Model
import Tensors
import Spawn
import TestSupport

/// Other tools read proclip checkpoints: the `lz4` command decompresses them, and Python reads
/// the result with the NumPy-only reader in Scripts/reference and with the `safetensors`
/// package (installed by this test when missing: it fails, never skips, without it).
final class InteropTests: XCTestCase {
    func testLZ4CommandAndPythonReadCheckpoints() throws {
        try ensureSafetensorsPackage()
        let dir = TempDir()
        defer { dir.cleanUp() }
        let store = trainedStore()
        let expected = dir.sub("expected.safetensors")
        var w = SafeTensorsWriter()
        store.write(into: &w, prefix: "param/", includeEMA: true)
        for (slab, prefix) in [(store.expAvg, "exp_avg/"), (store.expAvgSq, "exp_avg_sq/")] {
            for e in store.layout.entries { w.add(prefix + e.name, shape: e.shape, floats: store.values(e, in: slab)) }
        }
        try w.write(to: expected)

        for shuffle in [true, false] {
            let ckpt = dir.sub("ckpt-\(shuffle).lz4"), payload = dir.sub("payload-\(shuffle).safetensors")
            let export = dir.sub("export-\(shuffle).safetensors")
            try CheckpointFile.write(store, meta: sampleMeta(), to: ckpt, byteShuffle: shuffle, producer: "t")
            let lz4 = try runProcess("lz4", ["-d", "-f", "-q", ckpt, payload])
            XCTAssertEqual(lz4.status, .exited(0), "lz4 -d failed: \(lz4.stderr)")
            let ex = try runProcess(proclipExecutable, ["checkpoint", "export", ckpt, "--out", export, "--inference-only"])
            XCTAssertEqual(ex.status, .exited(0), ex.stderr)
            let py = try runProcess("python3", [repositoryRoot + "/Tests/Python/checkpoint_interop.py", ckpt, payload, expected, export])
            XCTAssertEqual(py.status, .exited(0), "python: \(py.stdout) \(py.stderr)")
            XCTAssertEqual(py.stdout, "ok: 75 tensors, byte_shuffle \(shuffle), step 120\n")
        }
    }

    /// Installs the `safetensors` Python package when it is missing.
    func ensureSafetensorsPackage() throws {
        if try runProcess("python3", ["-c", "import numpy, safetensors.numpy"]).status == .exited(0) { return }
        let pip = try runProcess("python3", ["-m", "pip", "install", "-q", "numpy", "safetensors"])
        XCTAssertEqual(pip.status, .exited(0), "pip install safetensors failed: \(pip.stderr)")
        XCTAssertEqual(try runProcess("python3", ["-c", "import safetensors.numpy"]).status, .exited(0), "safetensors not importable after install")
    }
}
