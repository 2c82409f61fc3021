import Control
import Foundation
import Spawn
import XCTest

/// `proclip status` while a job runs: every field with sane values, fast answers, `--watch`.
final class StatusTests: XCTestCase {
    func testStatusDuringARun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-status-\(getpid())").path
        let port = 33000 + Int(getpid() % 2000)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let launch = try LoggedProcess(executable: proclipExecutable, arguments: [
            "launch", "--config", "Configs/demo.yaml", "--workers", "2", "--max-steps", "300", "--port", "\(port)",
            "--run-dir", dir, "--overwrite", "--quiet", "--threads", "1", "--transport", "tcp",
        ], log: FileManager.default.temporaryDirectory.appendingPathComponent("proclip-status-launch-\(getpid()).log").path)
        defer { launch.send(signal: SIGKILL) }
        let client = try StatusClient(endpoint: endpoint)
        var report: StatusReport?
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if let r = try? client.query(timeout: 0.5), r.state == .running, r.step >= 2, r.workers.allSatisfy({ $0.computeSeconds > 0 }) {
                report = r
                break
            }
            usleep(100_000)
        }
        let r = try XCTUnwrap(report, "the job reports running steps")
        XCTAssertEqual(r.job, "demo")
        XCTAssertEqual(r.totalSteps, 300)
        XCTAssertTrue((1...300).contains(r.step))
        XCTAssertEqual(r.phase.count, 2)
        XCTAssertTrue((0..<8).contains(r.phase.epoch))
        XCTAssertEqual(r.worldSize, 2)
        XCTAssertEqual(r.generation, 1)
        XCTAssertTrue(r.loss.values.allSatisfy { $0.isFinite && $0 >= 0 })
        // Usually the first phase; on a fast machine the workers' first timings may come after it.
        XCTAssertEqual(r.phase.kind, r.phase.name)
        if r.phase.name == "inherit" {
            XCTAssertLessThanOrEqual(r.step, 256)
            XCTAssertEqual(Set(r.loss.keys), ["ins", "str", "total"])
            XCTAssertEqual(Set(r.lossSmoothed.keys), ["ins", "str", "total"])
            XCTAssertEqual(Set(r.lr.keys), ["text"])
            XCTAssertEqual(try XCTUnwrap(r.logitScale), 1 / 0.07, accuracy: 0.01, "inherit leaves the logit scale at its start")
        } else {
            XCTAssertEqual(r.phase.name, "contrast")
            XCTAssertGreaterThan(r.step, 256)
            XCTAssertEqual(Set(r.loss.keys), ["clip", "sd_ins", "sd_str", "total"])
            XCTAssertEqual(Set(r.lr.keys), ["image", "scale", "text"])
        }
        XCTAssertGreaterThan(try XCTUnwrap(r.samplesPerSecond), 0)
        XCTAssertGreaterThan(try XCTUnwrap(r.etaSeconds), 0)
        XCTAssertGreaterThan(r.elapsedSeconds, 0)
        XCTAssertEqual(r.workers.count, 2)
        XCTAssertEqual(Set(r.workers.compactMap(\.rank)), [0, 1])
        for w in r.workers {
            XCTAssertEqual(w.state, .assigned)
            XCTAssertLessThan(w.heartbeatAgeSeconds, 5)
            XCTAssertEqual(w.host, "127.0.0.1")
            XCTAssertGreaterThan(w.pid, 0)
            XCTAssertGreaterThan(w.computeSeconds, 0)
            XCTAssertGreaterThanOrEqual(w.commSeconds, 0)
            XCTAssertGreaterThanOrEqual(w.allreduceGBs, 0)
        }
        XCTAssertTrue(r.events.contains { $0.text.hasPrefix("generation 1") }, "\(r.events)")
        XCTAssertEqual(r.droppedMessages, 0)

        // Answers while the job runs: the median of a few questions within 100 ms.
        var times: [Double] = []
        for _ in 0..<7 {
            let t0 = Date()
            _ = try client.query(timeout: 2)
            times.append(Date().timeIntervalSince(t0))
        }
        XCTAssertLessThan(times.sorted()[3], 0.1, "status answers in \(times)")

        // --json prints the same report; --watch refreshes (a new report each period).
        let json = try runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let decoded = try JSONDecoder().decode(StatusReport.self, from: Data(json.stdout.utf8))
        XCTAssertEqual(decoded.job, "demo")
        let watchLog = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-watch-\(getpid()).log").path
        try? FileManager.default.removeItem(atPath: watchLog)
        let watch = try LoggedProcess(executable: proclipExecutable, arguments: ["status", "--coordinator", endpoint, "--watch", "0.2"], log: watchLog)
        usleep(1_500_000)
        watch.send(signal: SIGTERM)
        _ = watch.wait(timeout: 5)
        let watched = try String(contentsOfFile: watchLog, encoding: .utf8)
        XCTAssertGreaterThanOrEqual(watched.components(separatedBy: "job demo · ").count - 1, 3, watched)
        launch.send(signal: SIGINT)
        XCTAssertNotNil(launch.wait(timeout: 30), "launch stops on Ctrl-C")
    }
}
