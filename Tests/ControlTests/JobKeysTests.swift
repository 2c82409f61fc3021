import Control
import Foundation
import Wire
import XCTest

/// Key files: written whole with mode 0600, read back per role, refused when others can read
/// them, when they belong to another role, or when a line is wrong — each error naming the file.
final class JobKeysTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "proclip-keys-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body() } catch { return "\(error)" }
        return "(no error)"
    }

    func testCreateAndLoadEveryRole() throws {
        let made = try JobKeys.create(in: dir + "/keys")
        XCTAssertEqual(mode(dir + "/keys"), 0o700)
        for role in JobKeys.Role.allCases { XCTAssertEqual(mode("\(dir)/keys/\(role.fileName)"), 0o600, "\(role)") }
        let coordinator = try JobKeys.load(dir + "/keys", role: .coordinator)
        let worker = try JobKeys.load(dir + "/keys", role: .worker)
        let status = try JobKeys.load(dir + "/keys/status.key", role: .status)
        XCTAssertEqual([coordinator, worker, status], made)
        XCTAssertEqual(coordinator.workerPublic, worker.pair.publicKey)
        XCTAssertEqual(coordinator.statusPublic, status.pair.publicKey)
        XCTAssertEqual(worker.coordinatorPublic, coordinator.pair.publicKey)
        XCTAssertEqual(status.coordinatorPublic, coordinator.pair.publicKey)
        XCTAssertEqual(Set([coordinator.pair, worker.pair, status.pair].map(\.secretKey)).count, 3, "three distinct key pairs")
        // A status client may use the worker's file; a worker may not use the status file.
        XCTAssertEqual(try JobKeys.load(dir + "/keys/worker.key", role: .status), worker)
        XCTAssertTrue(message { try JobKeys.load(dir + "/keys/status.key", role: .worker) }.contains("holds status keys"))
    }

    func testRefusals() throws {
        try JobKeys.create(in: dir)
        XCTAssertTrue(message { try JobKeys.create(in: self.dir) }.contains("keys exist already"))
        XCTAssertNoThrow(try JobKeys.create(in: dir, replace: true))

        chmod(dir + "/worker.key", 0o644)
        let open = message { try JobKeys.load(self.dir, role: .worker) }
        XCTAssertTrue(open.contains("worker.key") && open.contains("chmod 600"), open)
        chmod(dir + "/worker.key", 0o600)

        XCTAssertTrue(message { try JobKeys.load(self.dir + "/missing", role: .worker) }.contains("proclip keys new"))

        let text = try String(contentsOfFile: dir + "/worker.key", encoding: .utf8)
        func loadEdited(_ edit: (String) -> String) -> String {
            FileManager.default.createFile(atPath: dir + "/edited.key", contents: Data(edit(text).utf8), attributes: [.posixPermissions: 0o600])
            return message { try JobKeys.load(self.dir + "/edited.key", role: .worker) }
        }
        XCTAssertTrue(loadEdited { $0 + "garbage\n" }.contains("edited.key:7: expected `name = value`"))
        XCTAssertTrue(loadEdited { $0.replacingOccurrences(of: "role = worker", with: "role = admin") }.contains("`role` must be"))
        XCTAssertTrue(loadEdited { $0.replacingOccurrences(of: "\npublic = ", with: "\npublic = x") }.contains("public is not a 40-character Z85 key"))
        let other = try CurveKeyPair.generate()
        let lines = text.split(separator: "\n").map { $0.hasPrefix("public = ") ? "public = \(other.publicKey)" : String($0) }
        XCTAssertTrue(loadEdited { _ in lines.joined(separator: "\n") }.contains("public does not belong to secret"))
        XCTAssertTrue(loadEdited { $0 + $0.split(separator: "\n").last! + "\n" }.contains("given twice"))
    }
}
