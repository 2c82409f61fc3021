import Foundation
import Ring
import Spawn
import TestSupport
import XCTest

/// The ZeroMQ transport between real processes: the `proclip` executable that `swift test`
/// builds beside this test bundle, in its per-rank benchmark mode.
final class ProcessTests: XCTestCase {
    /// Runs `proclip args…` to completion and returns its status and standard output lines.
    func run(_ args: [String], limit: Double = 120) throws -> (ExitStatus?, [String], String) {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: proclipExecutable), "proclip is built next to the tests: \(proclipExecutable)")
        let child = try ChildProcess(executable: proclipExecutable, arguments: args)
        child.closeInput()
        var lines: [String] = []
        let deadline = monotonicSeconds() + limit
        while let line = try child.readLine(timeout: max(1, deadline - monotonicSeconds())) { lines.append(line) }
        let status = try child.wait(timeout: 10)
        return (status, lines, child.standardError())
    }

    func checkAll(_ args: [String], expectedLines: Int) throws {
        let (status, lines, err) = try run(["bench", "collectives", "--check", "--json", "--timeout", "20"] + args)
        XCTAssertEqual(status, .exited(0), err)
        XCTAssertEqual(lines.count, expectedLines, lines.joined(separator: "\n"))
        for line in lines { XCTAssertTrue(line.contains("\"correct\": true"), line) }
    }

    func testAllCollectivesOverTcpBetweenProcesses() throws {
        // 4 collectives × 6 sizes, including 0, 1 and 3 floats and a prime count (100003 floats).
        try checkAll(["--world", "3", "--transport", "tcp", "--sizes", "0,4,12,4K,400012,1M", "--segment-bytes", "64K"], expectedLines: 24)
    }

    func testAllCollectivesOverIpcWithTwoStreams() throws {
        try checkAll(["--world", "4", "--transport", "ipc", "--streams", "2", "--sizes", "4,20,1028,262148", "--segment-bytes", "4K"], expectedLines: 16)
    }

    func testBulkAllReduceRoundTheZeroMQRingOverTcp() throws {
        try checkAll(["--world", "4", "--transport", "tcp", "--no-direct-bulk", "--sizes", "12,400012,4M", "--segment-bytes", "64K"], expectedLines: 12)
    }

    /// A group larger than `--direct-max-world`: small all-reduces and barriers round the
    /// ZeroMQ ring, bulk exchanges over direct links between ring neighbours only.
    func testBulkExchangesBetweenRingNeighboursOfALargerGroup() throws {
        try checkAll(["--world", "4", "--transport", "tcp", "--direct-max-world", "2", "--sizes", "0,12,4K,400012,4M", "--segment-bytes", "64K"],
                     expectedLines: 20)
    }

    func testRingOnlyGroupOverTcp() throws {
        // No direct connections: small all-reduces gather round the ring, barriers pass tokens.
        try checkAll(["--world", "3", "--transport", "tcp", "--direct-max-world", "0", "--sizes", "4,4K,100K"], expectedLines: 12)
    }

    func testBenchReportsJSONPerSize() throws {
        let (status, lines, err) = try run(["bench", "collectives", "--world", "2", "--sizes", "4K,256K", "--reps", "3", "--warmup", "1", "--json"])
        XCTAssertEqual(status, .exited(0), err)
        XCTAssertEqual(lines.count, 2)
        for (line, bytes) in zip(lines, [4096, 262_144]) {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertEqual(object?["bytes"] as? Int, bytes)
            XCTAssertEqual(object?["correct"] as? Bool, true)
            for key in ["seconds", "algbw_gbs", "busbw_gbs", "p2p_gbs"] {
                XCTAssertGreaterThan(object?[key] as? Double ?? 0, 0, key)
            }
        }
    }

    /// SIGKILL one rank in the middle of back-to-back all-reduces: every other rank reports a
    /// timeout within the configured time (plus scheduling slack) and exits; nothing hangs.
    func testKilledPeerMakesTheOthersTimeOut() throws { try killPeer(transport: "tcp") }

    /// The same over ipc, with the all-reduce round the ZeroMQ ring, where payloads sit in
    /// shared memory the dead rank mapped.
    func testKilledPeerOverSharedMemoryMakesTheOthersTimeOut() throws { try killPeer(transport: "ipc", ["--no-direct-bulk"]) }

    /// Over ipc with two slots per link and small segments, most payloads of a large block's
    /// first step find the slots taken and travel in messages: every collective stays exact.
    func testAllCollectivesOverIpcWhenSharedSlotsRunOut() throws {
        try checkAll(["--world", "3", "--transport", "ipc", "--shared-memory-slots", "2", "--no-direct-bulk",
                      "--sizes", "0,12,400012,4M", "--segment-bytes", "16K"],
                     expectedLines: 16)
    }

    /// The same with the all-reduce as exchanges over the direct links: with one slot per link
    /// the payloads alternate between shared memory and the Unix socket.
    func testExchangesOverIpcWithOneSharedSlot() throws {
        try checkAll(["--world", "3", "--transport", "ipc", "--shared-memory-slots", "1",
                      "--sizes", "0,12,400012,4M", "--segment-bytes", "16K"], expectedLines: 16)
    }

    func killPeer(transport: String, _ extra: [String] = []) throws {
        let world = 4, timeout = 4.0  // generous: a loaded machine must not trip it before the kill
        let args = ["bench", "collectives", "--world", "\(world)", "--sizes", "4M", "--reps", "100000", "--warmup", "0",
                    "--timeout", "\(timeout)", "--transport", transport, "--session", "kill\(getpid())"] + extra
        let ranks = try (0..<world).map { try ChildProcess(executable: proclipExecutable, arguments: args + ["--child-rank", "\($0)"]) }
        var endpoints: [String] = []
        for child in ranks {
            let line = try child.readLine(timeout: 30) ?? ""
            XCTAssertTrue(line.hasPrefix("endpoint "), line)
            endpoints.append(String(line.dropFirst("endpoint ".count)))
        }
        for (r, child) in ranks.enumerated() { try child.writeLine("successor \(endpoints[(r + 1) % world])") }
        for child in ranks { XCTAssertEqual(try child.readLine(timeout: 30), "ready") }
        // Each rank names its payload path just before it enters the timed loop of barriers and
        // all-reduces: once all have, the kill lands inside that loop.
        for child in ranks {
            let line = try child.readLine(timeout: 30) ?? ""
            XCTAssertTrue(line.hasPrefix("path "), line)
        }
        for (r, child) in ranks.enumerated() where r != 1 { XCTAssertNil(try child.wait(timeout: 0), "rank \(r) still running") }
        ranks[1].send(signal: SIGKILL)
        let killed = monotonicSeconds()
        XCTAssertEqual(try ranks[1].wait(timeout: 5), .signaled(SIGKILL))
        defer { RingListener.removeLeftovers(of: "ipc:///tmp/proclip-ring-kill\(getpid())-1") }  // the killed rank's
        for (r, child) in ranks.enumerated() where r != 1 {
            let status = try child.wait(timeout: timeout + 10)
            let waited = monotonicSeconds() - killed
            XCTAssertEqual(status, .exited(3), "rank \(r): \(child.standardError())")
            XCTAssertLessThan(waited, timeout + 5, "rank \(r) gave up \(waited) s after the kill")
            XCTAssertTrue(child.standardError().contains("timed out"), child.standardError())
        }
    }
}
