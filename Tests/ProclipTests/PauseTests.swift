import Basics
import Foundation
import Spawn
import TestSupport
import XCTest

/// A worker that stops answering for longer than the heartbeat timeout (SIGSTOP) and then goes
/// on is declared dead, comes back, and rejoins: the job finishes as if nothing had happened.
final class PauseTests: XCTestCase {
    func testAWorkerPausedPastTheHeartbeatTimeoutRejoinsAndTheJobFinishesBitIdentical() throws {
        let dir = TempDir(prefix: "proclip-pause")
        defer { dir.cleanUp() }
        // The demo with a long first phase, so the job is still training when the pause ends.
        let config = dir.sub("long.yaml")
        let demo = try String(contentsOfFile: "\(repositoryRoot)/Configs/demo.yaml", encoding: .utf8)
        let first = try XCTUnwrap(demo.range(of: "epochs: 8"))
        try demo.replacingCharacters(in: first, with: "epochs: 4000").write(toFile: config, atomically: true, encoding: .utf8)
        let steps = 3000
        let common = ["launch", "--config", config, "--workers", "2", "--quiet", "--threads", "1", "--max-steps", "\(steps)",
                      "--checkpoint-every", "200"]
        let reference = dir.sub("reference")
        let r = try runProcess(proclipExecutable, common + ["--run-dir", reference], timeout: 300)
        XCTAssertEqual(r.status, .exited(0), r.stderr)

        let run = dir.sub("paused")
        let p = try startLoggedProcess(proclipExecutable, common + ["--run-dir", run], log: dir.sub("paused.launch.log"))
        defer { p.killTree() }
        var worker: pid_t?
        XCTAssertTrue(waitUntil(deadline: .after(seconds: 120), interval: 0.02) {
            worker = childProcessIDs(of: p.pid).first { commandLine(of: $0)?.contains(" worker ") == true }
            let trained = (try? String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8))?.contains("\"step\":20,") == true
            return (worker != nil && trained) || p.poll() != nil
        }, "the job starts training")
        let paused = try XCTUnwrap(worker)
        XCTAssertNil(p.poll(), "still training when the worker is paused")
        XCTAssertEqual(kill(paused, SIGSTOP), 0)
        let declaredDead = waitUntil(deadline: .after(seconds: 60), interval: 0.1) {
            (try? String(contentsOfFile: run + "/train.log", encoding: .utf8))?.contains("] dead: worker") == true
        }
        XCTAssertEqual(kill(paused, SIGCONT), 0)
        XCTAssertTrue(declaredDead, "the paused worker is declared dead")
        XCTAssertEqual(p.wait(timeout: 300), .exited(0), (try? String(contentsOfFile: run + "/train.log", encoding: .utf8)) ?? "")

        let log = try String(contentsOfFile: run + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("] back: worker"), log)
        XCTAssertTrue(log.contains("] generation 2: 2 worker(s)"), log)
        XCTAssertEqual(try metricsSteps(run).map(\.step), Array(1...steps), "every step once")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/final.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: reference + "/final.safetensors")),
                       "the same world size: the same parameters bit for bit")
    }
}
