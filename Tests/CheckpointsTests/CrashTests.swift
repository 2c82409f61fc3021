import XCTest
@testable import Checkpoints
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// A writer killed with SIGKILL in the middle of a write never leaves `latest` naming an
/// incomplete file; it leaves at most a `*.tmp-<pid>` file, which the next start removes.
final class CrashTests: XCTestCase {
    func testSIGKILLMidWriteNeverLeavesLatestOnAnIncompleteFile() throws {
        // Kill points: as soon as the temporary file appears, after 1 MB and 12 MB of it, and at
        // a random moment after a save completed (which may fall between rename and `latest`).
        let killAt: [Int?] = [0, 1 << 20, 12 << 20, nil]
        var rng = SplitMix64(seed: UInt64(getpid()))
        for threshold in killAt {
            let dir = TempDir()
            defer { dir.cleanUp() }
            let child = try Child([proclip, "checkpoint", "_write-test", "--dir", dir.path, "--megabytes", "40", "--shuffle"])
            guard let first = child.readLine(timeout: 120), first.hasPrefix("saved ") else {
                child.kill(SIGKILL)
                return XCTFail("writer did not save: \(child.wait().stderr)")
            }
            let d = CheckpointDirectory(dir.path)
            var temporary: String?
            if let threshold {
                let deadline = now() + 60
                while temporary == nil && now() < deadline {
                    for name in try d.names() where name.hasPrefix("ckpt-") && name.hasSuffix(".tmp-\(child.pid)") {
                        var st = stat()
                        if stat(dir.sub(name), &st) == 0 && Int(st.st_size) >= threshold { temporary = name }
                    }
                    if temporary == nil { usleep(200) }
                }
                XCTAssertNotNil(temporary, "no temporary file reached \(threshold) bytes")
            } else {
                usleep(UInt32(rng.below(300_000)))
            }
            child.kill(SIGKILL)
            let end = child.wait()
            XCTAssertEqual(end.status, 128 + SIGKILL, "writer was not killed: \(end.stderr)")

            // `latest` names a complete checkpoint; the newest valid one is it or a newer
            // complete file renamed just before the kill; nothing else was skipped.
            let latest = try XCTUnwrap(try d.latestName())
            let h = try CheckpointFile.verify(d.file(latest))
            let s = d.newestValid()
            XCTAssertEqual(s.warnings, [])
            let chosen = try XCTUnwrap(s.header)
            XCTAssertTrue(chosen.meta.step == h.meta.step || chosen.meta.step == h.meta.step + 1, "\(chosen.meta.step) vs \(h.meta.step)")
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
