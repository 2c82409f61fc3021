import Basics
import Foundation
import XCTest

/// A file that grows by whole lines: a write that fails part-way is cut back, and the error
/// names the file.
final class LineFileTests: XCTestCase {
    func testLinesReachTheFileWholeAndReplaceKeepsAppending() throws {
        let path = NSTemporaryDirectory() + "/proclip-lines-\(getpid()).jsonl"
        defer { unlink(path) }
        let f = try LineFile(path: path, truncate: true)
        f.append("{\"step\":1}")
        f.append("{\"step\":2}")
        XCTAssertEqual(f.pendingBytes, 22)
        try f.flush()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "{\"step\":1}\n{\"step\":2}\n")
        try f.replace(with: ["{\"step\":1}"])
        f.append("{\"step\":2,\"again\":true}")
        try f.flush()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "{\"step\":1}\n{\"step\":2,\"again\":true}\n")
        let reopened = try LineFile(path: path, truncate: false)
        reopened.append("{\"step\":3}")
        try reopened.flush()
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).hasSuffix("true}\n{\"step\":3}\n"))
    }

    func testAWriteThatCannotBeMadeIsAnErrorNamingTheFile() throws {
        let f = try LineFile(path: "/dev/full", truncate: false)
        f.append("{\"step\":1}")
        XCTAssertThrowsError(try f.flush()) { error in
            XCTAssertEqual((error as? FileError)?.path, "/dev/full", "\(error)")
        }
        XCTAssertEqual(f.pendingBytes, 11, "the lines stay buffered for a later attempt")
    }

    /// On a full file system the file keeps only whole lines.
    func testAFullDiskLeavesOnlyWholeLines() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root; CI runs this as root") }
        let dir = NSTemporaryDirectory() + "/proclip-lines-full-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(system("mount -t tmpfs -o size=16k tmpfs \(dir)"), 0)
        defer { _ = system("umount \(dir)") }
        let f = try LineFile(path: dir + "/metrics.jsonl", truncate: true)
        var written = 0, failure: Error?
        for k in 1...2000 {
            f.append("{\"step\":\(k),\"pad\":\"\(String(repeating: "x", count: 100))\"}")
            if k % 7 == 0 {
                do { try f.flush(); written = k } catch { failure = error; break }
            }
        }
        let error = try XCTUnwrap(failure, "a 16 KiB file system fills")
        XCTAssertTrue("\(error)".contains(dir + "/metrics.jsonl"), "\(error)")
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertTrue(text.hasSuffix("\n"))
        XCTAssertEqual(lines.count, written, "every flushed line, and no part of the one that failed")
        XCTAssertTrue(lines.allSatisfy { $0.hasSuffix("\"}") })
    }
}
