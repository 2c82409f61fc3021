import Control
import Foundation
import Spawn
import XCTest

/// Coordinator and workers as real processes on this host.
final class DistributedTests: XCTestCase {
    let phases = "\(repositoryRoot)/Tests/ProclipTests/Configs/phases.yaml"

    func tempDir(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The demo config trained for 20 steps with 1, 2, 3 and 4 workers gives the parameters of one
    /// process (relative difference ≤ 1e-5; one worker: bit for bit).
    func testWorkerCountDoesNotChangeTheResult() throws {
        let reference = tempDir("exact-train")
        let t = try runProcess(proclipExecutable, ["train", "--config", "Configs/demo.yaml", "--max-steps", "20", "--run-dir", reference,
                                                   "--overwrite", "--quiet", "--threads", "1"])
        XCTAssertEqual(t.status, 0, t.stderr)
        let want = try loadTensors(reference + "/final.safetensors")
        // Gradients all-reduced after backward, and bucket by bucket during it.
        for (w, overlap) in [(1, "auto"), (2, "off"), (2, "on"), (3, "on"), (4, "off")] {
            let dir = tempDir("exact-\(w)")
            let r = try runProcess(proclipExecutable, ["launch", "--config", "Configs/demo.yaml", "--workers", "\(w)", "--max-steps", "20",
                                                       "--run-dir", dir, "--overwrite", "--quiet", "--threads", "1", "--overlap", overlap])
            XCTAssertEqual(r.status, 0, "\(w) workers: \(r.stderr)\n" + ((try? String(contentsOfFile: dir + "/coordinator.log", encoding: .utf8)) ?? ""))
            if w > 1 {
                let log = try String(contentsOfFile: dir + "/worker-1.log", encoding: .utf8)
                XCTAssertTrue(log.contains("all-reduced \(overlap == "on" ? "during" : "after") backward"), log)
            }
            let got = try loadTensors(dir + "/final.safetensors")
            let (whole, worst) = relativeDifference(got, want)
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(w) workers, overlap \(overlap): worst tensor \(worst), whole \(whole)")
            if w == 1 { XCTAssertEqual(whole, 0, "one worker runs exactly the single-process step") }
            let metrics = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(metrics.count, 20)
        }
    }

    /// A worker killed mid-run under `launch` (ring over ipc, payloads in shared memory): the
    /// coordinator forms generation 2 with the two left, which bind the same ipc endpoints again,
    /// resume from the newest checkpoint and finish; metrics.jsonl has every step once.
    func testDeadWorkerReformsTheRingOverIpc() throws {
        let dir = tempDir("reform")
        let port = 35000 + Int(getpid() % 2000)
        let launch = try LoggedProcess(executable: proclipExecutable, arguments: [
            "launch", "--config", "Configs/demo.yaml", "--workers", "3", "--min-workers", "2", "--max-steps", "300",
            "--checkpoint-every", "20", "--port", "\(port)", "--run-dir", dir, "--overwrite", "--quiet", "--threads", "1",
        ], log: dir + ".launch.log")
        defer { launch.send(signal: SIGKILL) }
        let client = try StatusClient(endpoint: "tcp://127.0.0.1:\(port)")
        var victim: Int32?
        let deadline = Date().addingTimeInterval(120)
        while victim == nil, Date() < deadline, launch.poll() == nil {
            if let r = try? client.query(timeout: 0.5), r.step >= 25, r.workers.count == 3 {
                victim = r.workers.first { $0.rank == 1 }?.pid
            }
            usleep(20_000)
        }
        let pid = try XCTUnwrap(victim, "a running job with three workers past its first checkpoint")
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        XCTAssertEqual(launch.wait(timeout: 180), .exited(0), (try? String(contentsOfFile: dir + ".launch.log", encoding: .utf8)) ?? "")
        let log = try String(contentsOfFile: dir + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("generation 2: 2 worker(s), resuming from step"), log)
        let steps = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line -> Int in
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return obj?["step"] as? Int ?? -1
        }
        XCTAssertEqual(steps, Array(1...300))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/final.safetensors"))
        let worker0 = try String(contentsOfFile: dir + "/worker-0.log", encoding: .utf8)
        XCTAssertTrue(worker0.contains("generation 1: ring joined; payloads to the successor travel in shared memory"), worker0)
        let left = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("proclip-\(launch.pid)-worker") }
        XCTAssertEqual(left.sorted(), [], "launch removes its workers' ipc endpoints")
    }

    /// Every worker switches phase at the configured step; the coordinator logs the change and the
    /// phase-end evaluation; metrics.jsonl names the phase of every step.
    func testPhasesSwitchTogether() throws {
        let dir = tempDir("phases")
        let r = try runProcess(proclipExecutable, ["launch", "--config", phases, "--workers", "3", "--run-dir", dir, "--overwrite", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let log = try String(contentsOfFile: dir + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("phase 2/2 'contrast' started at step 12"), log)
        XCTAssertTrue(log.contains("after inherit (step 12)"), log)
        XCTAssertTrue(log.contains("after contrast (step 20)"), log)
        for k in 0..<3 {
            let w = try String(contentsOfFile: dir + "/worker-\(k).log", encoding: .utf8)
            XCTAssertTrue(w.contains("phase 1/2 'inherit' (inherit) from step 0"), w)
            XCTAssertTrue(w.contains("phase 2/2 'contrast' (contrast) from step 12"), w)
        }
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 20)
        for (i, line) in lines.enumerated() {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(obj["step"] as? Int, i + 1)
            XCTAssertEqual(obj["phase"] as? String, i < 12 ? "inherit" : "contrast")
        }
        let eval = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/eval.json"))) as? [[String: Any]])
        XCTAssertEqual(eval.compactMap { $0["phase"] as? String }, ["inherit", "contrast"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/final.safetensors"))
    }

    /// A worker with another config or another dataset is refused with a message naming the
    /// difference; a second coordinator on the same port fails clearly; SIGTERM stops the job.
    func testRefusalsAndPortConflict() throws {
        let dir = tempDir("refusals")
        let port = 31000 + Int(getpid() % 2000)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let coordinator = try LoggedProcess(executable: proclipExecutable, arguments: [
            "coordinator", "--config", phases, "--listen", endpoint, "--workers", "2", "--run-dir", dir, "--overwrite",
        ], log: dir + "/coordinator.out")
        defer { coordinator.send(signal: SIGKILL) }
        // Wait until it answers.
        var up = false
        for _ in 0..<100 where !up {
            up = (try? runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--timeout", "0.5"]))?.status == 0
        }
        XCTAssertTrue(up, "the coordinator answers status")

        let other = tempDir("other-config") + "/other.yaml"
        try String(contentsOfFile: phases, encoding: .utf8).replacingOccurrences(of: "lambda: 4.0e-3", with: "lambda: 5.0e-3")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let badConfig = try runProcess(proclipExecutable, ["worker", "--coordinator", endpoint, "--config", other], timeout: 60)
        XCTAssertEqual(badConfig.status, 2, badConfig.stderr)
        XCTAssertTrue(badConfig.stderr.contains("config differs"), badConfig.stderr)

        let world = tempDir("other-world")
        let synth = try runProcess(proclipExecutable, ["synth", "--out", world + "/w", "--pairs", "600", "--eval-pairs", "100", "--seed", "5"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let badData = try runProcess(proclipExecutable, ["worker", "--coordinator", endpoint, "--data", world + "/w"], timeout: 60)
        XCTAssertEqual(badData.status, 2, badData.stderr)
        XCTAssertTrue(badData.stderr.contains("data manifest differs"), badData.stderr)

        let second = try runProcess(proclipExecutable, ["coordinator", "--config", phases, "--listen", endpoint, "--run-dir", dir + "/second"], timeout: 60)
        XCTAssertNotEqual(second.status, 0)
        XCTAssertTrue(second.stderr.contains("cannot listen on \(endpoint)"), second.stderr)

        let status = try runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--json"])
        XCTAssertEqual(status.status, 0)
        XCTAssertTrue(status.stdout.contains("\"state\" : \"waiting\""), status.stdout)

        coordinator.send(signal: SIGTERM)
        XCTAssertEqual(coordinator.wait(timeout: 20), .exited(143), "SIGTERM stops the coordinator")
        let log = try String(contentsOfFile: dir + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("refused"), log)
        let noCoordinator = try runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--timeout", "0.5"])
        XCTAssertEqual(noCoordinator.status, 1)
        XCTAssertTrue(noCoordinator.stderr.contains("no coordinator answered at \(endpoint)"), noCoordinator.stderr)
    }
}
