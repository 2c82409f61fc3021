import Control
import Foundation
import Ring
import Spawn
import XCTest

/// Killing a whole job (coordinator, workers, launcher) with SIGKILL and resuming it gives the
/// parameters of the run that was never interrupted: bit for bit mid-epoch and at a phase
/// boundary, within 1e-5 with another number of workers; a corrupt newest checkpoint is skipped.
final class ResumeTests: XCTestCase {
    let phases = "\(repositoryRoot)/Tests/ProclipTests/Configs/phases.yaml"

    func dir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-resume-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    func launch(_ config: String, workers: Int, runDir: String, extra: [String] = []) throws -> Finished {
        try runProcess(proclipExecutable, ["launch", "--config", config, "--workers", "\(workers)", "--run-dir", runDir, "--quiet",
                                           "--threads", "1"] + extra, timeout: 600)
    }

    /// Starts a launch and kills every process of it with SIGKILL once `ready(runDir)` holds.
    func launchAndKill(_ config: String, workers: Int, runDir: String, extra: [String], until ready: (String) -> Bool) throws {
        let p = try LoggedProcess(executable: proclipExecutable, arguments: [
            "launch", "--config", config, "--workers", "\(workers)", "--run-dir", runDir, "--quiet", "--threads", "1", "--overwrite",
        ] + extra, log: runDir + ".launch.log")
        let deadline = Date().addingTimeInterval(300)
        while !ready(runDir) && Date() < deadline && p.poll() == nil { usleep(20_000) }
        XCTAssertNil(p.poll(), "the job was still running when it was killed")
        // The launcher and its children (coordinator.log and worker logs name their pids).
        _ = try runProcess("/usr/bin/env", ["pkill", "-KILL", "-f", "run-dir \(runDir)"])
        _ = try runProcess("/usr/bin/env", ["pkill", "-KILL", "-f", "proclip worker --coordinator"])
        _ = p.wait(timeout: 10)
        // What a launcher cleans up at exit, this one could not: its workers' ipc endpoints.
        for k in 0..<workers { RingListener.removeLeftovers(of: "ipc:///tmp/proclip-\(p.pid)-worker-\(k)") }
    }

    func metricsLines(_ runDir: String) -> Int {
        ((try? String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    func checkpoints(_ runDir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: runDir + "/checkpoints")) ?? []).filter { $0.hasSuffix(".lz4") }.sorted()
    }

    func finalBytes(_ runDir: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: runDir + "/final.safetensors")) }

    func testResumeMidEpochIsBitIdentical() throws {
        let extra = ["--max-steps", "200", "--checkpoint-every", "10"]
        let full = dir("mid-full")
        XCTAssertEqual(try launch("Configs/demo.yaml", workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, 0)
        let cut = dir("mid-cut")
        try launchAndKill("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra) { self.checkpoints($0).contains("ckpt-000000000030.lz4") }
        let killedAt = try XCTUnwrap(checkpoints(cut).last)
        XCTAssertLessThan(killedAt, "ckpt-000000000200", "killed before the end")
        let r = try launch("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let log = try String(contentsOfFile: cut + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("resume: from"), log)
        XCTAssertEqual(try finalBytes(cut), try finalBytes(full), "killed at step \(killedAt), resumed: the same parameters bit for bit")
        XCTAssertEqual(metricsLines(cut), 200, "one metrics line per step, none twice")
    }

    func testResumeAtPhaseBoundaryAndPastACorruptCheckpoint() throws {
        let extra = ["--checkpoint-every", "5"]
        let full = dir("phase-full")
        XCTAssertEqual(try launch(phases, workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, 0)
        let cut = dir("phase-cut")
        try launchAndKill(phases, workers: 2, runDir: cut, extra: extra) { self.checkpoints($0).contains("ckpt-000000000012-end.lz4") }
        let names = checkpoints(cut)
        XCTAssertTrue(names.contains("ckpt-000000000012-end.lz4"), "\(names)")
        // Resume from the phase-end checkpoint itself: remove anything newer.
        for n in names where n > "ckpt-000000000012-end.lz4" { try FileManager.default.removeItem(atPath: cut + "/checkpoints/" + n) }
        let r = try launch(phases, workers: 2, runDir: cut, extra: extra + ["--resume", cut + "/checkpoints/ckpt-000000000012-end.lz4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try finalBytes(cut), try finalBytes(full), "resumed at the phase boundary: bit for bit")

        // A corrupt newest checkpoint: `auto` falls back to the one before, naming the bad one.
        let corrupt = dir("corrupt")
        try launchAndKill(phases, workers: 2, runDir: corrupt, extra: extra) { self.checkpoints($0).count >= 3 }
        let newest = try XCTUnwrap(checkpoints(corrupt).last)
        let path = corrupt + "/checkpoints/" + newest
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let again = try launch(phases, workers: 2, runDir: corrupt, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let log = try String(contentsOfFile: corrupt + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains(newest), "the skipped checkpoint is named: \(log)")
        XCTAssertEqual(try finalBytes(corrupt), try finalBytes(full), "resumed from the checkpoint before the corrupt one: bit for bit")
    }

    func testResumeWithMoreWorkersAndRefusalOfAnotherConfig() throws {
        let extra = ["--max-steps", "60", "--checkpoint-every", "10"]
        let full = dir("more-full")
        XCTAssertEqual(try launch("Configs/demo.yaml", workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, 0)
        let cut = dir("more-cut")
        try launchAndKill("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra) { self.checkpoints($0).count >= 2 }
        let other = cut + "-other.yaml"
        try String(contentsOfFile: "\(repositoryRoot)/Configs/demo.yaml", encoding: .utf8)
            .replacingOccurrences(of: "lambda: 4.0e-3", with: "lambda: 5.0e-3").write(toFile: other, atomically: true, encoding: .utf8)
        let refused = try launch(other, workers: 2, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertNotEqual(refused.status, 0)
        let coordinatorLog = try String(contentsOfFile: cut + "/coordinator.log", encoding: .utf8)
        XCTAssertTrue(coordinatorLog.contains("config hashes to"), coordinatorLog)

        let r = try launch("Configs/demo.yaml", workers: 3, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let (_, worst) = relativeDifference(try loadTensors(cut + "/final.safetensors"), try loadTensors(full + "/final.safetensors"))
        XCTAssertLessThanOrEqual(worst, 1e-5, "2 workers, then 3 after the resume: worst tensor \(worst)")
    }

    /// Ctrl-C (SIGINT to launch, SIGTERM to the coordinator): rank 0 checkpoints the step it is on,
    /// then the job stops; resuming it finishes with the parameters of the uninterrupted run.
    func testStopCheckpointsAndResumes() throws {
        let extra = ["--max-steps", "300", "--checkpoint-every", "1000"]
        let full = dir("stop-full")
        XCTAssertEqual(try launch("Configs/demo.yaml", workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, 0)
        let cut = dir("stop-cut")
        let port = 35000 + Int(getpid() % 2000)
        let p = try LoggedProcess(executable: proclipExecutable, arguments: [
            "launch", "--config", "Configs/demo.yaml", "--workers", "2", "--run-dir", cut, "--quiet", "--threads", "1", "--overwrite",
            "--port", "\(port)",
        ] + extra, log: cut + ".launch.log")
        let client = try StatusClient(endpoint: "tcp://127.0.0.1:\(port)")
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline && p.poll() == nil {
            if let r = try? client.query(timeout: 0.2), r.state == .running, r.step >= 30 { break }
            usleep(5_000)
        }
        XCTAssertNil(p.poll(), "still running when stopped")
        p.send(signal: SIGINT)
        let status = p.wait(timeout: 120)
        XCTAssertEqual(status, .exited(143), "launch returns the coordinator's status after a stop")
        let log = try String(contentsOfFile: cut + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("checkpointing first") && log.contains("stopped after the checkpoint of step"), log)
        let saved = checkpoints(cut)
        XCTAssertEqual(saved.count, 1, "\(saved)")
        let r = try launch("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try finalBytes(cut), try finalBytes(full), "stopped, resumed: bit for bit")
        XCTAssertEqual(metricsLines(cut), 300)
    }
}
