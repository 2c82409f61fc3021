import Foundation
import Spawn
import TestSupport
import XCTest

/// `proclip grad` against the independent float64 NumPy reference (Scripts/reference), for both
/// phases and adaptors of 1 and 2 blocks; `--workers 2, 3, 4` against one worker; bad inputs.
/// Fails — never skips — when python3 or numpy is missing.
final class ReferenceTests: XCTestCase {
    func testGradAgainstNumPyReference() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-ref-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let r = try runProcess("python3", ["\(repositoryRoot)/Scripts/reference/compare_grad.py", "--proclip", proclipExecutable, "--workdir", work])
        XCTAssertEqual(r.status, .exited(0), "reference comparison failed:\n\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("contrast L=2") && r.stdout.contains("inherit L=1"), "every case ran:\n\(r.stdout)")
    }
}
