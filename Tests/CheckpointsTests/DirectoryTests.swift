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

/// The checkpoint directory: `latest`, newest-valid selection with fallback, retention, and the
/// clean-up of temporaries left by a crash.
final class DirectoryTests: XCTestCase {
    var dir: TempDir!
    override func setUp() { dir = TempDir() }
    override func tearDown() { dir.cleanUp() }

    /// Saves steps 10, 20, 30 (parameters scaled by the step, so each is distinguishable) and
    /// returns the stores saved.
    func saveThree(keepLast: Int = 5) throws -> [Int: ParameterStore] {
        var options = CheckpointOptions(producer: "t")
        options.keepLast = keepLast
        let writer = try CheckpointWriter(directory: dir.path, layout: ParameterLayout(tinyShape), options: options)
        var saved: [Int: ParameterStore] = [:]
        for step in [10, 20, 30] {
            let store = trainedStore(seed: UInt64(step))
            writer.save(store, meta: sampleMeta(step: step))
            saved[step] = store
        }
        for outcome in writer.finish() {
            if case .failed(_, let e) = outcome { XCTFail("\(e)") }
        }
        return saved
    }

    func testNamesAndLatest() throws {
        XCTAssertEqual(CheckpointDirectory.fileName(step: 1200, phaseEnd: false), "ckpt-000000001200.lz4")
        XCTAssertEqual(CheckpointDirectory.fileName(step: 7, phaseEnd: true), "ckpt-000000000007-end.lz4")
        XCTAssertEqual(CheckpointDirectory.entry(named: "ckpt-000000000007-end.lz4"), .init(name: "ckpt-000000000007-end.lz4", step: 7, phaseEnd: true))
        for bad in ["ckpt-7.lz4", "ckpt-000000000007.lz4.tmp-12", "ckpt-00000000000x.lz4", "latest", "ckpt-0000000000007.lz4"] {
            XCTAssertNil(CheckpointDirectory.entry(named: bad), bad)
        }
        _ = try saveThree()
        let d = CheckpointDirectory(dir.path)
        XCTAssertEqual(try Files.read(d.latestPath), Array("ckpt-000000000030.lz4\n".utf8))
        XCTAssertEqual(try d.entries().map(\.step), [10, 20, 30])
        XCTAssertEqual(try d.names().filter { $0.contains(".tmp-") }, [])
    }

    func testNewestValidIsTheNewestWhenAllVerify() throws {
        let saved = try saveThree()
        let store = ParameterStore(layout: ParameterLayout(tinyShape))
        let s = CheckpointDirectory(dir.path).loadNewestValid(into: store)
        XCTAssertEqual(s.warnings, [])
        XCTAssertEqual(s.header?.meta.step, 30)
        assertIdentical(store, saved[30]!)
    }

    /// A flipped byte, a truncation, or the file gone: resume takes the previous checkpoint and
    /// a warning names the one skipped.
    func testNewestValidFallsBackPastACorruptTruncatedOrMissingNewest() throws {
        for damage in ["flip", "truncate", "missing"] {
            dir.cleanUp()
            dir = TempDir()
            let saved = try saveThree()
            let newest = dir.sub("ckpt-000000000030.lz4")
            let size = try Files.read(newest).count
            switch damage {
            case "flip": try flipByte(newest, at: size / 2)
            case "truncate": truncateFile(newest, to: size * 2 / 3)
            default: XCTAssertEqual(unlink(newest), 0)
            }
            let store = ParameterStore(layout: ParameterLayout(tinyShape))
            let s = CheckpointDirectory(dir.path).loadNewestValid(into: store)
            XCTAssertEqual(s.header?.meta.step, 20, damage)
            XCTAssertEqual(s.header?.path, dir.sub("ckpt-000000000020.lz4"))
            assertIdentical(store, saved[20]!)
            XCTAssertEqual(s.warnings.count, 1, "\(s.warnings)")
            let w = s.warnings.first ?? ""
            XCTAssertTrue(w.hasPrefix(newest + ": "), w)
            XCTAssertTrue(w.hasSuffix("; skipped"), w)
            XCTAssertTrue(w.contains(["flip": "corrupt", "truncate": "truncated", "missing": "missing (named by \(dir.sub("latest")))"][damage]!), w)
            XCTAssertEqual(CheckpointDirectory(dir.path).newestValid().header?.meta.step, 20)
        }
    }

    func testTwoDamagedFallBackTwiceAndNoneValidIsReported() throws {
        _ = try saveThree()
        try flipByte(dir.sub("ckpt-000000000030.lz4"), at: 200)
        truncateFile(dir.sub("ckpt-000000000020.lz4"), to: 50)
        let s = CheckpointDirectory(dir.path).newestValid()
        XCTAssertEqual(s.header?.meta.step, 10)
        XCTAssertEqual(s.warnings.count, 2)
        truncateFile(dir.sub("ckpt-000000000010.lz4"), to: 0)
        let none = CheckpointDirectory(dir.path).newestValid()
        XCTAssertNil(none.header)
        XCTAssertEqual(none.warnings.count, 3)
    }

    /// The only checkpoint corrupt: nothing is chosen, and the selection names the file and why.
    func testOnlyACorruptCheckpointIsNamedWithItsReason() throws {
        var options = CheckpointOptions(producer: "t")
        options.keepLast = 1
        let writer = try CheckpointWriter(directory: dir.path, layout: ParameterLayout(tinyShape), options: options)
        writer.save(trainedStore(), meta: sampleMeta(step: 10))
        _ = writer.finish()
        let only = dir.sub("ckpt-000000000010.lz4")
        try flipByte(only, at: try Files.read(only).count / 2)
        let s = CheckpointDirectory(dir.path).newestValid()
        XCTAssertNil(s.header)
        XCTAssertEqual(s.notices, [])
        XCTAssertEqual(s.skipped.map(\.path), [only])
        let reason = s.skipped.first?.reason ?? ""
        XCTAssertTrue(reason.hasPrefix("corrupt: "), reason)
        XCTAssertEqual(s.warnings, ["\(only): \(reason); skipped"])
        // Not a checkpoint at all (no LZ4 frame), and a `latest` naming a file that is gone.
        try Files.writeAtomically(only, Array("not a checkpoint".utf8))
        try Files.writeAtomically(dir.sub("latest"), Array("ckpt-000000000020.lz4\n".utf8))
        let none = CheckpointDirectory(dir.path).newestValid()
        XCTAssertNil(none.header)
        XCTAssertEqual(none.warnings, [
            "\(dir.sub("ckpt-000000000020.lz4")): missing (named by \(dir.sub("latest"))); skipped",
            "\(only): not an LZ4 frame: starts with bytes 6e 6f 74 20, expected 04 22 4d 18; skipped",
        ])
    }

    func testGarbledLatestIsIgnoredWithAWarning() throws {
        _ = try saveThree()
        try Files.writeAtomically(dir.sub("latest"), Array("../../etc/passwd\n".utf8))
        let s = CheckpointDirectory(dir.path).newestValid()
        XCTAssertEqual(s.header?.meta.step, 30)
        XCTAssertEqual(s.warnings, ["\(dir.sub("latest")): '../../etc/passwd' is not a checkpoint file name; ignored"])
    }

    func testRetentionKeepsTheLastKAndEveryPhaseEnd() throws {
        var options = CheckpointOptions(producer: "t")
        options.keepLast = 2
        let writer = try CheckpointWriter(directory: dir.path, layout: ParameterLayout(tinyShape), options: options)
        let store = trainedStore()
        for step in 1...8 {
            writer.save(store, meta: sampleMeta(step: 100 + step, phaseEnd: step == 3 || step == 6))
        }
        let outcomes = writer.finish()
        XCTAssertEqual(outcomes.count, 8)
        let d = CheckpointDirectory(dir.path)
        XCTAssertEqual(try d.entries().map(\.name), ["ckpt-000000000103-end.lz4", "ckpt-000000000106-end.lz4",
                                                     "ckpt-000000000107.lz4", "ckpt-000000000108.lz4"])
        XCTAssertEqual(try d.latestName(), "ckpt-000000000108.lz4")
        guard case .saved(let seventh) = outcomes[6], case .saved(let last) = outcomes[7] else { return XCTFail("\(outcomes)") }
        XCTAssertEqual(seventh.removed, ["ckpt-000000000105.lz4"])
        XCTAssertEqual(last.removed, [])
        XCTAssertEqual(last.path, dir.sub("ckpt-000000000108.lz4"))
        XCTAssertGreaterThan(last.contentBytes, last.fileBytes)
        XCTAssertEqual(try CheckpointFile.readHeader(dir.sub("ckpt-000000000106-end.lz4")).meta.phaseEnd, true)
    }

    func testStaleTemporariesOfDeadWritersAreRemovedOnStart() throws {
        let dead = try startProcess("/bin/true", [])
        XCTAssertEqual(try dead.wait(timeout: 10), .exited(0))
        let stale = ["ckpt-000000000040.lz4.tmp-\(dead.pid)", "latest.tmp-\(dead.pid)"]
        let live = ["ckpt-000000000050.lz4.tmp-1", "ckpt-000000000060.lz4.tmp-\(getpid())", "notes.txt"]
        for name in stale + live { try Files.writeAtomically(dir.sub(name), [1, 2, 3]) }
        let writer = try CheckpointWriter(directory: dir.path, layout: ParameterLayout(tinyShape), options: CheckpointOptions(producer: "t"))
        XCTAssertEqual(writer.cleaned.sorted(), stale.sorted())
        XCTAssertEqual(try CheckpointDirectory(dir.path).names().sorted(), live.sorted())
    }

    /// `beginSave` copies on the writer thread; after `waitForSnapshot` the store may change and
    /// the file still holds the state at the time of the save.
    func testOverlappedSnapshotHoldsTheStateWhenSaveBegan() throws {
        let writer = try CheckpointWriter(directory: dir.path, layout: ParameterLayout(tinyShape), options: CheckpointOptions(producer: "t"))
        let store = trainedStore(seed: 3)
        let copy = trainedStore(seed: 3)
        writer.beginSave(store, meta: sampleMeta(step: 5))
        writer.waitForSnapshot()
        store.params.base.update(repeating: 9, count: store.params.count)
        let outcomes = writer.finish()
        XCTAssertEqual(outcomes.count, 1)
        guard case .saved(let s) = outcomes[0] else { return XCTFail("\(outcomes)") }
        let back = ParameterStore(layout: store.layout)
        try CheckpointFile.load(s.path, into: back)
        assertIdentical(back, copy)
        XCTAssertFalse(writer.isBusy)
        XCTAssertEqual(writer.waitForSnapshot(), 0, accuracy: 0.01)
    }

    func testAFailedSaveLeavesLatestOnThePreviousCheckpoint() throws {
        let writer = try CheckpointWriter(directory: dir.path, layout: ParameterLayout(tinyShape), options: CheckpointOptions(producer: "t"))
        let store = trainedStore()
        writer.save(store, meta: sampleMeta(step: 1))
        store.params.base[3] = .infinity
        writer.save(store, meta: sampleMeta(step: 2))
        let outcomes = writer.finish()
        guard case .failed(let step, let e) = outcomes.last! else { return XCTFail("\(outcomes)") }
        XCTAssertEqual(step, 2)
        XCTAssertEqual(e.description, "\(dir.sub("ckpt-000000000002.lz4")): not saved: tensor 'param/text.text_adaptor.0.ln.weight' holds a non-finite value at index [3]")
        XCTAssertEqual(try CheckpointDirectory(dir.path).latestName(), "ckpt-000000000001.lz4")
        XCTAssertEqual(try CheckpointDirectory(dir.path).names().sorted(), ["ckpt-000000000001.lz4", "latest"])
    }
}
