import XCTest
@testable import Features
import Tensors
import Spawn
import TestSupport

/// proclip's shards load in NumPy, and NumPy's load in proclip. Needs python3 with numpy
/// (Scripts/setup.sh installs it); the tests fail, never skip, without it.
final class NumpyInteropTests: XCTestCase {
    let script = repositoryRoot + "/Tests/Python/features_interop.py"

    func testShardsWrittenByProclipLoadInNumpy() throws {
        for dtype in [NpyDType.float32, .float16] {
            let dir = TempDir()
            defer { dir.cleanUp() }
            try Known.write(dir.sub("d"), dtype: dtype)
            let r = try runProcess("python3", [script, "check", dir.sub("d")])
            XCTAssertEqual(r.status, .exited(0), "numpy check failed (\(dtype)): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stdout.hasPrefix("ok: 12 rows"), r.stdout)
        }
    }

    func testShardsWrittenByNumpyLoadInProclip() throws {
        for dtype in ["float32", "float16"] {
            let dir = TempDir()
            defer { dir.cleanUp() }
            let r = try runProcess("python3", [script, "write", dir.sub("d"), dtype])
            XCTAssertEqual(r.status, .exited(0), "numpy writer failed: \(r.stdout) \(r.stderr)")
            let report = DatasetVerifier.verify(dir.sub("d"))
            XCTAssertEqual(report.problems, [])
            XCTAssertEqual(report.rows, 9)
            let ds = try FeatureDataset.open(dir.sub("d"))
            XCTAssertEqual(ds.indices(of: .eval), [7, 8])
            let rows = Array(0..<9)
            var llm = [Float](repeating: .nan, count: 3 * 9 * Known.dLLM)
            var image = [Float](repeating: .nan, count: 9 * Known.dEmbed)
            ds.read(rows: rows[...], variants: [0, 1, 2], llm: &llm, clipText: nil, image: &image)
            for g in rows {
                for j in 0..<Known.dEmbed { XCTAssertEqual(image[g * Known.dEmbed + j], Known.value(0, g, 0, j)) }
                for v in 0..<3 {
                    for j in 0..<Known.dLLM { XCTAssertEqual(llm[(v * 9 + g) * Known.dLLM + j], Known.value(2, g, v, j)) }
                }
            }
        }
    }
}
