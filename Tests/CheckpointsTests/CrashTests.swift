import XCTest
@testable import Checkpoints
import Model
import Tensors
import Basics
import Spawn
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A writer killed with SIGKILL in the middle of a write never leaves `latest` naming an
/// incomplete file; it leaves at most a `*.tmp-<pid>` file, which the next start removes.
final class CrashTests: XCTestCase {
    /// Where the writer is killed: once a temporary file holds `bytes`, or as soon as the file of
    /// save `step` has been renamed into place (possibly before `latest` names it).
    enum KillPoint {
        case temporary(bytes: Int)
        case renamed(step: Int)
    }

    func testSIGKILLMidWriteNeverLeavesLatestOnAnIncompleteFile() throws {
        // Kill points: as soon as the temporary file appears, after 1 MB and 12 MB of it, and right
        // after a later save's rename (the second or third save, at random).
        var rng = SplitMix64(seed: UInt64(getpid()))
        let killAt: [KillPoint] = [.temporary(bytes: 0), .temporary(bytes: 1 << 20), .temporary(bytes: 12 << 20), .renamed(step: 2 + rng.below(2))]
        for point in killAt {
            let dir = TempDir()
            defer { dir.cleanUp() }
            let child = try startProcess(proclipExecutable, ["checkpoint", "_write-test", "--dir", dir.path, "--megabytes", "40", "--shuffle"])
            guard let first = try child.readLine(timeout: 120), first.hasPrefix("saved ") else {
                return XCTFail("writer did not save: \(child.standardError())")
            }
            let d = CheckpointDirectory(dir.path)
            var temporary: String?
            switch point {
            case .temporary(let bytes):
                let reached = try waitUntil(deadline: .after(seconds: 60), interval: 0.0002) {
                    temporary = try d.names().first { $0.hasPrefix("ckpt-") && $0.hasSuffix(".tmp-\(child.pid)") && fileSize(dir.sub($0)) >= bytes }
                    return temporary != nil
                }
                XCTAssertTrue(reached, "no temporary file reached \(bytes) bytes")
            case .renamed(let step):
                let name = CheckpointDirectory.fileName(step: step, phaseEnd: false)
                XCTAssertTrue(try waitUntil(deadline: .after(seconds: 60), interval: 0.0002) { try d.names().contains(name) }, "\(name) never appeared")
            }
            child.send(signal: SIGKILL)
            XCTAssertEqual(try child.wait(timeout: 30), .signaled(SIGKILL), "writer was not killed: \(child.standardError())")

            // `latest` names a complete checkpoint; the newest valid one is it or a newer
            // complete file renamed just before the kill; nothing else was skipped.
            let latest = try XCTUnwrap(try d.latestName())
            let h = try CheckpointFile.verify(d.file(latest))
            let s = d.newestValid()
            XCTAssertEqual(s.warnings, [])
            let chosen = try XCTUnwrap(s.header)
            XCTAssertTrue(chosen.meta.step == h.meta.step || chosen.meta.step == h.meta.step + 1, "\(chosen.meta.step) vs \(h.meta.step)")
            if case .renamed(let step) = point { XCTAssertGreaterThanOrEqual(chosen.meta.step, step, "the renamed file is complete") }
            let store = ParameterStore(layout: ParameterLayout(chosen.model))
            try CheckpointFile.load(chosen.path, into: store)
            XCTAssertEqual(store.params.base[0], Float(chosen.meta.step) + 0.5)

            // At most one temporary, the killed writer's; the next start removes it.
            let leftovers = try d.names().filter { $0.contains(".tmp-") }
            XCTAssertLessThanOrEqual(leftovers.count, 1, "\(leftovers)")
            XCTAssertTrue(leftovers.allSatisfy { $0.hasSuffix(".tmp-\(child.pid)") }, "\(leftovers)")
            if let temporary { XCTAssertEqual(leftovers, [temporary]) }
            let writer = try CheckpointWriter(directory: dir.path, layout: store.layout, options: CheckpointOptions(producer: "t"))
            XCTAssertEqual(writer.cleaned, leftovers)
            XCTAssertEqual(try d.names().filter { $0.contains(".tmp-") }, [])
        }
    }
}

/// The size of a file in bytes (0 when it is gone).
private func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
}
