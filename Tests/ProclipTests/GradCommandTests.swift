import Foundation
import Spawn
import TestSupport
import XCTest

/// The `proclip grad` command as users meet it.
final class GradCommandTests: XCTestCase {
    func testPrintSettingsIsOneJSONObject() throws {
        let r = try runProcess(proclipExecutable, ["grad", "--config", "\(repositoryRoot)/Tests/ProclipTests/Configs/tiny.yaml",
                                                   "--phase", "inherit", "--print-settings"])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(obj["ins_variants"] as? [Int], [0, 2])
        XCTAssertEqual(obj["str_variants"] as? [Int], [0])
        XCTAssertEqual(obj["group"] as? Int, 4)
        XCTAssertEqual(obj["w_ins"] as? Double, 1)
        XCTAssertEqual(obj["w_str"] as? Double, 1)
        XCTAssertNotNil(obj["lambda"])
    }

    func testHelpAndVersion() throws {
        let help = try runProcess(proclipExecutable, ["--help"])
        XCTAssertEqual(help.status, .exited(0))
        XCTAssertTrue(help.stdout.contains("grad"))
        let version = try runProcess(proclipExecutable, ["--version"])
        XCTAssertEqual(version.status, .exited(0))
        XCTAssertFalse(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }
}
