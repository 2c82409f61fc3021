import Basics
import Control
import Foundation
import Ring
import Spawn
import TestSupport
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
        XCTAssertEqual(t.status, .exited(0), t.stderr)
        let want = try loadTensors(reference + "/final.safetensors")
        // Gradients all-reduced after backward, and bucket by bucket during it.
        for (w, overlap) in [(1, "auto"), (2, "off"), (2, "on"), (3, "on"), (4, "off")] {
            let dir = tempDir("exact-\(w)")
            let r = try runProcess(proclipExecutable, ["launch", "--config", "Configs/demo.yaml", "--workers", "\(w)", "--max-steps", "20",
                                                       "--run-dir", dir, "--overwrite", "--quiet", "--threads", "1", "--overlap", overlap])
            XCTAssertEqual(r.status, .exited(0), "\(w) workers: \(r.stderr)\n" + ((try? String(contentsOfFile: dir + "/coordinator.log", encoding: .utf8)) ?? ""))
            if w > 1 {
                // Only the worker's log tells when it all-reduced.
                let log = try String(contentsOfFile: dir + "/worker-1.log", encoding: .utf8)
                XCTAssertTrue(log.contains("\(overlap == "on" ? "during" : "after") backward"), log)
            }
            let got = try loadTensors(dir + "/final.safetensors")
            let (whole, worst) = relativeDifference(got, want)
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(w) workers, overlap \(overlap): worst tensor \(worst), whole \(whole)")
            if w == 1 { XCTAssertEqual(whole, 0, "one worker runs exactly the single-process step") }
            XCTAssertEqual(try metricsSteps(dir).map(\.step), Array(1...20))
        }
    }

    /// A worker killed mid-run under `launch` (ring over ipc, payloads in shared memory): the
    /// coordinator forms generation 2 with the two left, which bind the same ipc endpoints again,
    /// resume from the newest checkpoint and finish; metrics.jsonl has every step once.
    func testDeadWorkerReformsTheRingOverIpc() throws {
        let dir = tempDir("reform")
        let port = 35000 + Int(getpid() % 2000)
        let launch = try startLoggedProcess(proclipExecutable, [
            "launch", "--config", "Configs/demo.yaml", "--workers", "3", "--min-workers", "2", "--max-steps", "300",
            "--checkpoint-every", "20", "--port", "\(port)", "--run-dir", dir, "--overwrite", "--quiet", "--threads", "1",
        ], log: dir + ".launch.log")
        defer { launch.killTree() }
        let launchLog = { (try? String(contentsOfFile: dir + ".launch.log", encoding: .utf8)) ?? "" }
        let client = try StatusClient(endpoint: "tcp://127.0.0.1:\(port)", security: try statusSecurity(runDir: dir))
        var running: StatusReport?
        waitUntil(deadline: .after(seconds: 120), interval: 0.02) {
            if let r = try? client.query(timeout: 0.5), r.state == .running, r.workers.count == 3, (r.lastCheckpointStep ?? 0) >= 20 {
                running = r
            }
            return running != nil || launch.poll() != nil
        }
        let gen1 = try XCTUnwrap(running, "a running job with three workers past its first checkpoint: \(launchLog())")
        let workers = gen1.workers
        // Ring payloads travel in shared memory: the workers map the slots behind each ipc endpoint.
        let maps = workers.map { (try? String(contentsOfFile: "/proc/\($0.pid)/maps", encoding: .utf8)) ?? "" }.joined()
        for k in 0..<3 {
            let slots = SharedSlots.name(for: "ipc:///tmp/proclip-\(launch.pid)-worker-\(k)")
            XCTAssertTrue(maps.contains("/dev/shm" + slots), "worker \(k)'s shared-memory slots \(slots) are mapped")
        }
        let pid = try XCTUnwrap(workers.first { $0.rank == 1 }?.pid)
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        let killedAt = Date().timeIntervalSince1970

        // Generation 2: the two left, in a ring of two.
        var reformed: StatusReport?
        waitUntil(deadline: .after(seconds: 120), interval: 0.02) {
            if let r = try? client.query(timeout: 0.5), r.generation == 2 { reformed = r }
            return reformed != nil || launch.poll() != nil
        }
        let r = try XCTUnwrap(reformed, "status reports generation 2: \(launchLog())")
        XCTAssertEqual(r.worldSize, 2)
        XCTAssertEqual(launch.wait(timeout: 180), .exited(0), launchLog())

        // Every step once; those up to a checkpoint were kept from generation 1, the later ones
        // recomputed by generation 2 from that checkpoint.
        let lines = try metricsSteps(dir)
        XCTAssertEqual(lines.map(\.step), Array(1...300))
        let resumedFrom = lines.last { $0.time < killedAt }?.step ?? 0
        XCTAssertTrue(resumedFrom >= gen1.lastCheckpointStep ?? 20 && resumedFrom % 20 == 0,
                      "generation 2 resumed from the checkpoint of step \(resumedFrom), the newest at the kill")
        XCTAssertEqual(lines.filter { $0.time < killedAt }.map(\.step), Array(1...max(resumedFrom, 1)))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/final.safetensors"))
        let left = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("proclip-\(launch.pid)-worker") }
        XCTAssertEqual(left.sorted(), [], "launch removes its workers' ipc endpoints")
    }

    /// Every worker switches phase at the configured step; the coordinator evaluates at each
    /// phase end; metrics.jsonl names the phase of every step.
    func testPhasesSwitchTogether() throws {
        let dir = tempDir("phases")
        let r = try runProcess(proclipExecutable, ["launch", "--config", phases, "--workers", "3", "--run-dir", dir, "--overwrite", "--quiet"])
        XCTAssertEqual(r.status, .exited(0), r.stderr)
        for k in 0..<3 {
            // Only each worker's log tells when that worker switched.
            let w = try String(contentsOfFile: dir + "/worker-\(k).log", encoding: .utf8).split(separator: "\n")
            XCTAssertTrue(w.contains { $0.contains("'inherit'") && $0.contains("step 0") }, w.joined(separator: "\n"))
            XCTAssertTrue(w.contains { $0.contains("'contrast'") && $0.contains("step 12") }, w.joined(separator: "\n"))
        }
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 20)
        for (i, line) in lines.enumerated() {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(obj["step"] as? Int, i + 1)
            XCTAssertEqual(obj["phase"] as? String, i < 12 ? "inherit" : "contrast")
            XCTAssertEqual(obj["phase_index"] as? Int, i < 12 ? 0 : 1)
            XCTAssertEqual(obj["phase_step"] as? Int, i < 12 ? i + 1 : i - 11)
        }
        let eval = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/eval.json"))) as? [[String: Any]])
        let phaseEnds = eval.filter { $0["phase"] is String }
        XCTAssertEqual(phaseEnds.compactMap { $0["phase"] as? String }, ["inherit", "contrast"])
        XCTAssertEqual(phaseEnds.compactMap { $0["step"] as? Int }, [12, 20])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/final.safetensors"))
    }

    /// A worker with another config or another dataset is refused with a message naming the
    /// difference; a second coordinator on the same port fails clearly; SIGTERM stops the job.
    func testRefusalsAndPortConflict() throws {
        let dir = tempDir("refusals")
        let port = 31000 + Int(getpid() % 2000)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let coordinator = try startLoggedProcess(proclipExecutable, [
            "coordinator", "--config", phases, "--listen", endpoint, "--workers", "2", "--run-dir", dir, "--overwrite",
        ], log: dir + "/coordinator.out")
        defer { coordinator.killTree() }
        func status() throws -> StatusReport? {
            let s = try runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--json", "--timeout", "0.5", "--keys", dir + "/keys"])
            return s.status == .exited(0) ? try JSONDecoder().decode(StatusReport.self, from: Data(s.stdout.utf8)) : nil
        }
        var waiting: StatusReport?
        try waitUntil(deadline: .after(seconds: 60), interval: 0.05) {
            waiting = try status()
            return waiting != nil || coordinator.poll() != nil
        }
        let configHash = try XCTUnwrap(waiting, "the coordinator answers status").configHash

        let other = tempDir("other-config") + "/other.yaml"
        try String(contentsOfFile: phases, encoding: .utf8).replacingOccurrences(of: "lambda: 4.0e-3", with: "lambda: 5.0e-3")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let badConfig = try runProcess(proclipExecutable, ["worker", "--coordinator", endpoint, "--config", other, "--keys", dir + "/keys"], timeout: 60)
        XCTAssertEqual(badConfig.status, .exited(2), badConfig.stderr)
        XCTAssertTrue(badConfig.stderr.contains("config") && badConfig.stderr.contains(configHash), badConfig.stderr)

        let world = tempDir("other-world")
        let synth = try runProcess(proclipExecutable, ["synth", "--out", world + "/w", "--pairs", "600", "--eval-pairs", "100", "--seed", "5"])
        XCTAssertEqual(synth.status, .exited(0), synth.stderr)
        let badData = try runProcess(proclipExecutable, ["worker", "--coordinator", endpoint, "--data", world + "/w", "--keys", dir + "/keys"], timeout: 60)
        XCTAssertEqual(badData.status, .exited(2), badData.stderr)
        XCTAssertTrue(badData.stderr.contains("manifest"), badData.stderr)

        let second = try runProcess(proclipExecutable, ["coordinator", "--config", phases, "--listen", endpoint, "--run-dir", dir + "/second"], timeout: 60)
        XCTAssertNotEqual(second.status, .exited(0))
        XCTAssertTrue(second.stderr.contains(endpoint), second.stderr)

        // Still waiting for its workers: the one refused at its hello is not listed, the one refused
        // for its dataset has left without a rank.
        let after = try XCTUnwrap(try status())
        XCTAssertEqual(after.state, .waiting)
        XCTAssertEqual(after.workers.map(\.state), [.left], "\(after.workers)")
        XCTAssertEqual(after.workers.compactMap(\.rank), [], "\(after.workers)")

        coordinator.send(signal: SIGTERM)
        XCTAssertEqual(coordinator.wait(timeout: 20), .exited(143), "SIGTERM stops the coordinator")
        let noCoordinator = try runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--timeout", "0.5", "--keys", dir + "/keys"])
        XCTAssertEqual(noCoordinator.status, .exited(1))
        XCTAssertTrue(noCoordinator.stderr.contains(endpoint), noCoordinator.stderr)
    }
}
