import Basics
import Foundation
import Spawn
import TestSupport
import XCTest

/// Failures no generation can get past end the job at once, with status 1 and one line naming
/// the step and the term, or the file — never by a heartbeat timeout, never with status 0.
final class LoudFailureTests: XCTestCase {
    /// Seconds between the coordinator's "generation 1" line and its "failed:" line in train.log
    /// (lines read "[12.3 s] text").
    func secondsToFailure(_ trainLog: String) -> Double? {
        func time(of prefix: String) -> Double? {
            for line in trainLog.split(separator: "\n") where line.hasPrefix("[") && line.contains(" s] \(prefix)") {
                return Double(line.dropFirst().prefix { $0 != " " })
            }
            return nil
        }
        guard let start = time(of: "generation 1"), let end = time(of: "failed: ") else { return nil }
        return end - start
    }

    func testANonFiniteLossEndsTheJobWithStatus1NamingTheStepAndTheTerm() throws {
        let dir = TempDir(prefix: "proclip-nan")
        defer { dir.cleanUp() }
        let config = dir.sub("nan.yaml")
        let demo = try String(contentsOfFile: "\(repositoryRoot)/Configs/demo.yaml", encoding: .utf8)
        XCTAssertTrue(demo.contains("lr: 2.0e-3"))
        try demo.replacingOccurrences(of: "lr: 2.0e-3", with: "lr: 1.0e+30").write(toFile: config, atomically: true, encoding: .utf8)
        let run = dir.sub("run")
        let r = try runProcess(proclipExecutable, ["launch", "--config", config, "--workers", "2", "--run-dir", run, "--quiet",
                                                   "--threads", "1", "--max-steps", "200"], timeout: 120)
        XCTAssertEqual(r.status, .exited(1), r.stderr)
        let log = try String(contentsOfFile: run + "/train.log", encoding: .utf8)
        let failed = log.split(separator: "\n").filter { $0.contains("] failed: ") }
        XCTAssertEqual(failed.count, 1, log)
        let line = String(failed.first ?? "")
        XCTAssertTrue(line.contains("non-finite loss (") && line.contains("step ") && line.contains("= nan"), line)
        XCTAssertFalse(log.contains("] dead: "), "no heartbeat timeout was needed: \(log)")
        let seconds = try XCTUnwrap(secondsToFailure(log), log)
        XCTAssertLessThan(seconds, 10, "the job failed \(seconds) s into training (heartbeat timeout: 10 s)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/final.safetensors"), "no final parameters for a failed job")
    }

    /// The checkpoints on a small tmpfs: the first fits, the next ones do not; the job stops after
    /// the second failure in a row, with status 1, naming the file, and the good one stays valid.
    func testCheckpointsThatCannotBeWrittenEndTheJobKeepingTheLastGoodOne() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root; CI runs this as root") }
        let dir = TempDir(prefix: "proclip-full")
        defer { dir.cleanUp() }
        let full = dir.sub("ckpt")
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=640k", "tmpfs", full], timeout: 30)
        XCTAssertEqual(mount.status, .exited(0), mount.stderr)
        defer { _ = try? runProcess("/bin/umount", [full], timeout: 30) }
        let run = dir.sub("run")
        let r = try runProcess(proclipExecutable, ["launch", "--config", "Configs/demo.yaml", "--workers", "2", "--run-dir", run, "--quiet",
                                                   "--threads", "1", "--max-steps", "300", "--checkpoint-every", "20",
                                                   "--checkpoint-dir", full], timeout: 120)
        XCTAssertEqual(r.status, .exited(1), r.stderr)
        let log = try String(contentsOfFile: run + "/train.log", encoding: .utf8)
        let failures = log.split(separator: "\n").filter { $0.contains("] checkpoint of step") && $0.contains(" failed: ") }
        XCTAssertEqual(failures.count, 2, log)
        XCTAssertTrue(failures.allSatisfy { $0.contains(full + "/") }, "each failure names the file: \(failures)")
        let failed = try XCTUnwrap(log.split(separator: "\n").first { $0.contains("] failed: ") }, log)
        XCTAssertTrue(failed.contains("2 checkpoints in a row"), String(failed))
        let saved = try FileManager.default.contentsOfDirectory(atPath: full).filter { $0.hasSuffix(".lz4") }
        XCTAssertEqual(saved, ["ckpt-000000000020.lz4"], "the good checkpoint stays, nothing half-written beside it")
        let verify = try runProcess(proclipExecutable, ["checkpoint", "verify", full + "/" + saved[0]], timeout: 60)
        XCTAssertEqual(verify.status, .exited(0), verify.stdout + verify.stderr)
        // Every metrics line is whole, one per step, up to where the job stopped.
        let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.last, "", "the file ends with a newline")
        for (k, l) in lines.dropLast().enumerated() {
            XCTAssertTrue(l.hasPrefix("{") && l.hasSuffix("}") && l.contains("\"step\":\(k + 1),"), "line \(k + 1): \(l)")
        }
    }
}
