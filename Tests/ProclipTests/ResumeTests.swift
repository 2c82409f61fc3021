import Basics
import Control
import Foundation
import Ring
import Spawn
import TestSupport
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
        let p = try startLoggedProcess(proclipExecutable, [
            "launch", "--config", config, "--workers", "\(workers)", "--run-dir", runDir, "--quiet", "--threads", "1", "--overwrite",
        ] + extra, log: runDir + ".launch.log")
        defer { p.killTree() }
        waitUntil(deadline: .after(seconds: 300), interval: 0.02) { ready(runDir) || p.poll() != nil }
        XCTAssertNil(p.poll(), "the job was still running when it was killed")
        // The launcher and its children (the coordinator and the workers), all at once.
        killProcessTree(p.pid)
        XCTAssertEqual(p.wait(timeout: 10), .signaled(SIGKILL))
        // What a launcher cleans up at exit, this one could not: its workers' ipc endpoints.
        for k in 0..<workers { RingListener.removeLeftovers(of: "ipc:///tmp/proclip-\(p.pid)-worker-\(k)") }
    }

    func checkpoints(_ runDir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: runDir + "/checkpoints")) ?? []).filter { $0.hasSuffix(".lz4") }.sorted()
    }

    func finalBytes(_ runDir: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: runDir + "/final.safetensors")) }

    func testResumeMidEpochIsBitIdentical() throws {
        let extra = ["--max-steps", "200", "--checkpoint-every", "10"]
        let full = dir("mid-full")
        XCTAssertEqual(try launch("Configs/demo.yaml", workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, .exited(0))
        let cut = dir("mid-cut")
        try launchAndKill("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra) { self.checkpoints($0).contains("ckpt-000000000030.lz4") }
        let killedAt = try XCTUnwrap(checkpoints(cut).last)
        XCTAssertLessThan(killedAt, "ckpt-000000000200", "killed before the end")
        let resumedAt = Date().timeIntervalSince1970
        let r = try launch("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        try assertResumed(cut, from: checkpointStep(killedAt), at: resumedAt, last: 200)
        XCTAssertEqual(try finalBytes(cut), try finalBytes(full), "killed at step \(killedAt), resumed: the same parameters bit for bit")
    }

    func testResumeAtPhaseBoundaryAndPastACorruptCheckpoint() throws {
        let extra = ["--checkpoint-every", "5"]
        let full = dir("phase-full")
        XCTAssertEqual(try launch(phases, workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, .exited(0))
        let cut = dir("phase-cut")
        try launchAndKill(phases, workers: 2, runDir: cut, extra: extra) { self.checkpoints($0).contains("ckpt-000000000012-end.lz4") }
        let names = checkpoints(cut)
        XCTAssertTrue(names.contains("ckpt-000000000012-end.lz4"), "\(names)")
        // Resume from the phase-end checkpoint itself: remove anything newer.
        for n in names where n > "ckpt-000000000012-end.lz4" { try FileManager.default.removeItem(atPath: cut + "/checkpoints/" + n) }
        let resumedAt = Date().timeIntervalSince1970
        let r = try launch(phases, workers: 2, runDir: cut, extra: extra + ["--resume", cut + "/checkpoints/ckpt-000000000012-end.lz4"])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        try assertResumed(cut, from: 12, at: resumedAt, last: 20)
        XCTAssertEqual(try finalBytes(cut), try finalBytes(full), "resumed at the phase boundary: bit for bit")

        // A corrupt newest checkpoint: `auto` falls back to the one before, naming the bad one.
        let corrupt = dir("corrupt")
        try launchAndKill(phases, workers: 2, runDir: corrupt, extra: extra) { self.checkpoints($0).count >= 3 }
        let saved = checkpoints(corrupt)
        let newest = try XCTUnwrap(saved.last)
        let path = corrupt + "/checkpoints/" + newest
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let resumedAgainAt = Date().timeIntervalSince1970
        let again = try launch(phases, workers: 2, runDir: corrupt, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(again.status, .exited(0), again.stderr)
        let log = try String(contentsOfFile: corrupt + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains(newest), "the skipped checkpoint is named: \(log)")
        try assertResumed(corrupt, from: checkpointStep(saved[saved.count - 2]), at: resumedAgainAt, last: 20)
        XCTAssertEqual(try finalBytes(corrupt), try finalBytes(full), "resumed from the checkpoint before the corrupt one: bit for bit")
    }

    func testResumeWithMoreWorkersAndRefusalOfAnotherConfig() throws {
        let extra = ["--max-steps", "60", "--checkpoint-every", "10"]
        let full = dir("more-full")
        XCTAssertEqual(try launch("Configs/demo.yaml", workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, .exited(0))
        let cut = dir("more-cut")
        try launchAndKill("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra) { self.checkpoints($0).count >= 2 }
        let other = cut + "-other.yaml"
        try String(contentsOfFile: "\(repositoryRoot)/Configs/demo.yaml", encoding: .utf8)
            .replacingOccurrences(of: "lambda: 4.0e-3", with: "lambda: 5.0e-3").write(toFile: other, atomically: true, encoding: .utf8)
        // Another config is refused, naming the checkpoint, and the run stays as it was.
        let saved = checkpoints(cut)
        let newest = try XCTUnwrap(saved.last)
        let metrics = try Data(contentsOf: URL(fileURLWithPath: cut + "/metrics.jsonl"))
        let logBytes = (try? Data(contentsOf: URL(fileURLWithPath: cut + "/coordinator.log")))?.count ?? 0
        let refused = try launch(other, workers: 2, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertNotEqual(refused.status, .exited(0))
        let refusal = String(decoding: try Data(contentsOf: URL(fileURLWithPath: cut + "/coordinator.log")).dropFirst(logBytes), as: UTF8.self)
        XCTAssertTrue(refusal.contains(newest) && refusal.contains("config"), refusal)
        XCTAssertEqual(checkpoints(cut), saved)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: cut + "/metrics.jsonl")), metrics)

        let resumedAt = Date().timeIntervalSince1970
        let r = try launch("Configs/demo.yaml", workers: 3, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        try assertResumed(cut, from: checkpointStep(newest), at: resumedAt, last: 60)
        let (_, worst) = relativeDifference(try loadTensors(cut + "/final.safetensors"), try loadTensors(full + "/final.safetensors"))
        XCTAssertLessThanOrEqual(worst, 1e-5, "2 workers, then 3 after the resume: worst tensor \(worst)")
    }

    /// Ctrl-C (SIGINT to launch, SIGTERM to the coordinator): rank 0 checkpoints the step it is on,
    /// then the job stops; resuming it finishes with the parameters of the uninterrupted run.
    func testStopCheckpointsAndResumes() throws {
        let extra = ["--max-steps", "300", "--checkpoint-every", "1000"]
        let full = dir("stop-full")
        XCTAssertEqual(try launch("Configs/demo.yaml", workers: 2, runDir: full, extra: extra + ["--overwrite"]).status, .exited(0))
        let cut = dir("stop-cut")
        let port = 35000 + Int(getpid() % 2000)
        let p = try startLoggedProcess(proclipExecutable, [
            "launch", "--config", "Configs/demo.yaml", "--workers", "2", "--run-dir", cut, "--quiet", "--threads", "1", "--overwrite",
            "--port", "\(port)",
        ] + extra, log: cut + ".launch.log")
        defer { p.killTree() }
        let client = try StatusClient(endpoint: "tcp://127.0.0.1:\(port)", security: try statusSecurity(runDir: cut))
        var running: Int?
        waitUntil(deadline: .after(seconds: 300), interval: 0.005) {
            if let r = try? client.query(timeout: 0.2), r.state == .running, r.step >= 30 { running = r.step }
            return running != nil || p.poll() != nil
        }
        let stepBeforeStop = try XCTUnwrap(running, "status reports step 30")
        XCTAssertNil(p.poll(), "still running when stopped")
        p.send(signal: SIGINT)
        let status = p.wait(timeout: 120)
        XCTAssertEqual(status, .exited(143), "launch returns the coordinator's status after a stop")
        // One checkpoint, of the step the job was on when told to stop.
        let saved = checkpoints(cut)
        XCTAssertEqual(saved.count, 1, "\(saved)")
        let stoppedAt = checkpointStep(try XCTUnwrap(saved.first))
        XCTAssertTrue((stepBeforeStop..<300).contains(stoppedAt), "stopped at step \(stoppedAt), asked at \(stepBeforeStop)")
        let resumedAt = Date().timeIntervalSince1970
        let r = try launch("Configs/demo.yaml", workers: 2, runDir: cut, extra: extra + ["--resume", "auto"])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        try assertResumed(cut, from: stoppedAt, at: resumedAt, last: 300)
        XCTAssertEqual(try finalBytes(cut), try finalBytes(full), "stopped, resumed: bit for bit")
    }
}
