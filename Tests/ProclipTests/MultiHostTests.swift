import Basics
import Control
import Foundation
import Spawn
import TestSupport
import XCTest

/// A job across test hosts: network namespaces on one machine (cluster/netns/hosts.sh), the
/// coordinator on one, a worker on each of three others, all over their own IP addresses.
/// Needs root (CI runs as root); without it the test is skipped, as the issue allows.
final class MultiHostTests: XCTestCase {
    let prefix = "pct"
    let subnet = "10.79.0"

    func hosts(_ args: [String]) throws -> Finished {
        try runProcess("\(repositoryRoot)/cluster/netns/hosts.sh", args, timeout: 120,
                       environment: ["PROCLIP_NETNS_PREFIX": prefix, "PROCLIP_NETNS_SUBNET": subnet])
    }

    func testTrainingAcrossNetworkNamespaceHosts() throws {
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root; CI runs this as root") }
        let up = try hosts(["up", "4"])
        XCTAssertEqual(up.status, .exited(0), "hosts up: \(up.stderr)")
        defer { _ = try? hosts(["down"]) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-multihost-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let endpoint = "tcp://\(subnet).10:29500"
        func onHost(_ k: Int, _ args: [String], log: String) throws -> LoggedProcess {
            try startLoggedProcess("/usr/sbin/ip", ["netns", "exec", "\(prefix)-h\(k)", proclipExecutable] + args, log: dir + "/" + log)
        }
        let keys = try runProcess(proclipExecutable, ["keys", "new", dir + "/keys", "--replace"])
        XCTAssertEqual(keys.status, .exited(0), keys.stderr)
        let coordinator = try onHost(0, ["coordinator", "--keys", dir + "/keys", "--config", "\(repositoryRoot)/Configs/demo.yaml", "--listen", endpoint,
                                         "--workers", "3", "--max-steps", "60", "--run-dir", dir + "/run", "--overwrite",
                                         "--data", "\(repositoryRoot)/runs/data/demo-world"], log: "coordinator.log")
        defer { coordinator.killTree() }
        var workers: [LoggedProcess] = []
        for k in 1...3 {
            workers.append(try onHost(k, ["worker", "--coordinator", endpoint, "--threads", "1", "--keys", dir + "/keys",
                                          "--data", "\(repositoryRoot)/runs/data/demo-world"], log: "worker-\(k).log"))
        }
        defer { for w in workers { w.killTree() } }

        // The status from outside the hosts (the bridge's address reaches them) while it runs.
        let client = try StatusClient(endpoint: endpoint, security: .curve(try JobKeys.load(dir + "/keys", role: .status)))
        var seen: StatusReport?
        waitUntil(deadline: .after(seconds: 120), interval: 0.05) {
            if let r = try? client.query(timeout: 0.5), r.state == .running, r.step >= 1 { seen = r }
            return seen != nil || coordinator.poll() != nil
        }
        let r = try XCTUnwrap(seen, "status while running:\n" + ((try? String(contentsOfFile: dir + "/coordinator.log", encoding: .utf8)) ?? ""))
        XCTAssertEqual(r.worldSize, 3)
        XCTAssertEqual(Set(r.workers.map(\.host)), ["\(subnet).11", "\(subnet).12", "\(subnet).13"], "each worker on its own host")
        XCTAssertEqual(coordinator.wait(timeout: 240), .exited(0), (try? String(contentsOfFile: dir + "/coordinator.log", encoding: .utf8)) ?? "")
        for w in workers { XCTAssertEqual(w.wait(timeout: 30), .exited(0)) }

        // The same 60 steps in one process.
        let single = try runProcess(proclipExecutable, ["train", "--config", "Configs/demo.yaml", "--max-steps", "60",
                                                        "--run-dir", dir + "/single", "--overwrite", "--quiet", "--threads", "1"])
        XCTAssertEqual(single.status, .exited(0), single.stderr)
        let (whole, worst) = relativeDifference(try loadTensors(dir + "/run/final.safetensors"), try loadTensors(dir + "/single/final.safetensors"))
        XCTAssertLessThanOrEqual(worst, 1e-5, "across hosts vs one process: worst tensor \(worst), whole \(whole)")
    }
}
