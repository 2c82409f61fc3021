import Basics
import Control
import Foundation
import Spawn
import TestSupport
import XCTest

/// `proclip status` while a job runs: every field with sane values, fast answers, `--watch`.
final class StatusTests: XCTestCase {
    func testStatusDuringARun() throws {
        let dir = TempDir(prefix: "proclip-status")
        defer { dir.cleanUp() }
        // The demo job with a first phase long enough to be running still when every question
        // below has been answered (the job is stopped at the end).
        let demo = try String(contentsOfFile: repositoryRoot + "/Configs/demo.yaml", encoding: .utf8)
        let inherit = "    epochs: 8\n    batch: 256\n"
        XCTAssertTrue(demo.contains(inherit), "Configs/demo.yaml's first phase")
        try demo.replacingOccurrences(of: inherit, with: "    epochs: 4000\n    batch: 256\n")
            .write(toFile: dir.sub("demo.yaml"), atomically: true, encoding: .utf8)
        let port = 33000 + Int(getpid() % 2000)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let launch = try startLoggedProcess(proclipExecutable, [
            "launch", "--config", dir.sub("demo.yaml"), "--workers", "2", "--max-steps", "100000", "--port", "\(port)",
            "--run-dir", dir.sub("run"), "--overwrite", "--quiet", "--threads", "1", "--transport", "tcp", "--checkpoint-every", "0",
        ], log: dir.sub("launch.log"))
        defer { launch.killTree() }
        let client = try StatusClient(endpoint: endpoint, security: try statusSecurity(runDir: dir.sub("run")))
        var report: StatusReport?
        waitUntil(deadline: .after(seconds: 120), interval: 0.1) {
            if let r = try? client.query(timeout: 0.5), r.state == .running, r.step >= 2, r.workers.allSatisfy({ $0.computeSeconds > 0 }) {
                report = r
            }
            return report != nil || launch.poll() != nil
        }
        let r = try XCTUnwrap(report, "the job reports running steps: " + ((try? String(contentsOfFile: dir.sub("launch.log"), encoding: .utf8)) ?? ""))
        XCTAssertEqual(r.job, "demo")
        XCTAssertEqual(r.totalSteps, 100_000)
        XCTAssertTrue((2...100_000).contains(r.step))
        XCTAssertEqual(r.phase.index, 0)
        XCTAssertEqual(r.phase.count, 2)
        XCTAssertEqual(r.phase.name, "inherit")
        XCTAssertEqual(r.phase.kind, "inherit")
        XCTAssertTrue((0..<4000).contains(r.phase.epoch))
        XCTAssertEqual(r.worldSize, 2)
        XCTAssertEqual(r.generation, 1)
        XCTAssertTrue(r.loss.values.allSatisfy { $0.isFinite && $0 >= 0 })
        XCTAssertEqual(Set(r.loss.keys), ["ins", "str", "total"])
        XCTAssertEqual(Set(r.lossSmoothed.keys), ["ins", "str", "total"])
        XCTAssertEqual(Set(r.lr.keys), ["text"])
        XCTAssertEqual(try XCTUnwrap(r.logitScale), 1 / 0.07, accuracy: 0.01, "inherit leaves the logit scale at its start")
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
        XCTAssertTrue(r.events.contains { $0.text.contains("generation 1") }, "\(r.events)")
        XCTAssertEqual(r.droppedMessages, 0)
        XCTAssertEqual(r.security, "curve")

        // Answers while the job runs: the median of a few questions within 100 ms.
        var times: [Double] = []
        for _ in 0..<7 {
            let t0 = Date()
            _ = try client.query(timeout: 2)
            times.append(Date().timeIntervalSince(t0))
        }
        XCTAssertLessThan(times.sorted()[3], 0.1, "status answers in \(times)")

        // --json prints the same report, later in the run.
        let json = try runProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--json", "--keys", dir.sub("run/keys")])
        XCTAssertEqual(json.status, .exited(0), json.stderr)
        let decoded = try JSONDecoder().decode(StatusReport.self, from: Data(json.stdout.utf8))
        XCTAssertEqual(decoded.job, "demo")
        XCTAssertEqual(decoded.configHash, r.configHash)
        XCTAssertGreaterThanOrEqual(decoded.step, r.step)

        // --watch refreshes: a new report each period, each further into the run.
        let watchLog = dir.sub("watch.log")
        let watch = try startLoggedProcess(proclipExecutable, ["status", "--coordinator", endpoint, "--watch", "0.2", "--keys", dir.sub("run/keys")], log: watchLog)
        defer { watch.killTree() }
        func watchedSteps() -> [Int] {
            let text = (try? String(contentsOfFile: watchLog, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.hasPrefix("job demo ") }.compactMap { heading in
                heading.components(separatedBy: " · ").first { $0.hasPrefix("step ") }.flatMap { integers(in: $0).first }
            }
        }
        XCTAssertTrue(waitUntil(deadline: .after(seconds: 60), interval: 0.05) { watchedSteps().count >= 3 || launch.poll() != nil },
                      "three reports from --watch")
        XCTAssertNil(launch.poll(), "the job runs while --watch reports")
        watch.send(signal: SIGTERM)
        XCTAssertNotNil(watch.wait(timeout: 5), "--watch ends on SIGTERM")
        let steps = watchedSteps()
        XCTAssertGreaterThanOrEqual(steps.count, 3, (try? String(contentsOfFile: watchLog, encoding: .utf8)) ?? "")
        XCTAssertEqual(steps, steps.sorted(), "reports follow the run")
        XCTAssertGreaterThan(steps.last ?? 0, steps.first ?? 0, "reports follow the run")

        launch.send(signal: SIGINT)
        XCTAssertNotNil(launch.wait(timeout: 30), "launch stops on Ctrl-C")
    }
}
