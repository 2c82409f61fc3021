import XCTest
@testable import Features
import Tensors
import Basics
import TestSupport

/// Each corruption gets one line naming the file; nothing crashes; writers leave nothing partial.
final class CorruptInputTests: XCTestCase {
    var dir: TempDir!
    var data: String { dir.sub("d") }

    override func setUpWithError() throws {
        dir = TempDir()
        try Known.write(data)
    }

    override func tearDown() { dir.cleanUp() }

    /// Rewrites the manifest's sizes and checksums to match the files, so only the planted problem remains.
    private func resealManifest(_ edit: (inout Manifest) -> Void = { _ in }) throws {
        var m = try JSONDecoder().decode(Manifest.self, from: Data(try Files.read(data + "/manifest.json")))
        edit(&m)
        for (i, s) in m.shards.enumerated() {
            for name in s.files.keys where Files.exists("\(data)/\(s.name)/\(name)") {
                let bytes = try Files.read("\(data)/\(s.name)/\(name)")
                m.shards[i].files[name] = FileEntry(bytes: bytes.count, crc32: CRC32.hex(bytes.withUnsafeBytes { CRC32.checksum($0) }))
            }
        }
        try Files.writeAtomically(data + "/manifest.json", m.encoded())
    }

    private func writeNpy(_ path: String, descr: String, shape: [Int], values: [Float]) throws {
        var bytes = NpyHeader.encode(dtype: .float32, shape: shape)
        let at = (0..<(bytes.count - 3)).first { bytes[$0..<($0 + 3)].elementsEqual("<f4".utf8) }!
        bytes.replaceSubrange(at..<(at + 3), with: Array(descr.utf8))
        if descr == "<f8" {
            for v in values { bytes += withUnsafeBytes(of: Double(v).bitPattern.littleEndian, Array.init) }
        } else if descr == "<f2" {
            for v in values { bytes += withUnsafeBytes(of: Float16(v).bitPattern.littleEndian, Array.init) }
        } else {
            for v in values { bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
        }
        try Files.writeAtomically(path, bytes)
    }

    /// `open` throws exactly one line naming `file`; `verify` reports it too; returns the problem.
    @discardableResult
    private func expectProblem(file: String, containing text: String, openFails: Bool = true,
                               line: UInt = #line) -> String {
        var found = ""
        if openFails {
            do {
                _ = try FeatureDataset.open(data)
                XCTFail("open accepted the corrupt dataset", line: line)
            } catch let e as FileError {
                XCTAssertEqual(e.path, file, line: line)
                XCTAssertTrue(e.problem.contains(text), "\(e)", line: line)
                XCTAssertFalse(e.description.contains("\n"), line: line)
                found = e.description
            } catch {
                XCTFail("not a FileError: \(error)", line: line)
            }
        }
        let report = DatasetVerifier.verify(data)
        XCTAssertTrue(report.problems.contains { $0.path == file && $0.problem.contains(text) },
                      "verify: \(report.problems)", line: line)
        XCTAssertTrue(report.problems.allSatisfy { !$0.description.contains("\n") }, line: line)
        return found.isEmpty ? report.problems.map(\.description).joined(separator: " | ") : found
    }

    func testTruncatedNpy() throws {
        let path = data + "/shard-1/llm.npy"
        var bytes = try Files.read(path)
        bytes.removeLast(10)
        try Files.writeAtomically(path, bytes)
        try resealManifest()
        expectProblem(file: path, containing: "truncated: shape [3, 3, 6] float32 needs 344 bytes, file has 334")
        // Truncated into the header as well.
        try Files.writeAtomically(path, Array(bytes.prefix(20)))
        try resealManifest()
        expectProblem(file: path, containing: "truncated .npy header")
    }

    func testWrongShape() throws {
        let path = data + "/shard-0/clip_text.npy"
        try writeNpy(path, descr: "<f4", shape: [5, 2, 4], values: Array(repeating: 0.5, count: 40))
        try resealManifest()
        let line = expectProblem(file: path, containing: "array 'clip_text': expected shape [5, 3, 4] (n, V, D_embed), got [5, 2, 4]")
        XCTAssertEqual(line, "\(path): array 'clip_text': expected shape [5, 3, 4] (n, V, D_embed), got [5, 2, 4]")
    }

    func testWrongDtype() throws {
        let path = data + "/shard-2/image.npy"
        try writeNpy(path, descr: "<f8", shape: [4, 4], values: Array(repeating: 1, count: 16))
        try resealManifest()
        expectProblem(file: path, containing: "dtype '<f8': expected little-endian float32 '<f4' or float16 '<f2'")
        // A float16 file in a float32 dataset.
        try writeNpy(path, descr: "<f2", shape: [4, 4], values: Array(repeating: 1, count: 16))
        try resealManifest()
        expectProblem(file: path, containing: "array 'image': expected float32 ('<f4'), got float16 ('<f2')")
    }

    func testNaNRowsAreFoundByVerify() throws {
        let path = data + "/shard-0/llm.npy"
        var values = (0..<(5 * 3 * 6)).map { Float($0) }
        values[(2 * 3 + 1) * 6 + 4] = .nan
        values[(4 * 3 + 0) * 6 + 0] = .infinity
        try writeNpy(path, descr: "<f4", shape: [5, 3, 6], values: values)
        try resealManifest()
        XCTAssertNoThrow(try FeatureDataset.open(data))  // open checks structure only
        expectProblem(file: path, containing: "array 'llm': 2 rows hold NaN or Inf, first row 2 variant 'long_en'", openFails: false)
    }

    func testManifestCountMismatch() throws {
        try resealManifest { $0.shards[0].rows = 6 }
        expectProblem(file: data + "/shard-0/image.npy", containing: "expected shape [6, 4] (n, D_embed), got [5, 4]")
    }

    func testMissingVariant() throws {
        // The manifest names a fourth variant the arrays do not have.
        try resealManifest { $0.variants.append("long_zh") }
        expectProblem(file: data + "/shard-0/clip_text.npy", containing: "expected shape [5, 4, 4] (n, V, D_embed), got [5, 3, 4]")
        // A caption line without one of the variants.
        try resealManifest { $0.variants.removeLast() }
        let caps = data + "/shard-1/captions.jsonl"
        let text = String(decoding: try Files.read(caps), as: UTF8.self)
        try Files.writeAtomically(caps, Array(text.replacingOccurrences(of: ", \"long_de\": \"row 6\"", with: "").utf8))
        try resealManifest()
        expectProblem(file: caps, containing: "line 2: missing caption variant 'long_de'", openFails: false)
        // Asking for a variant the dataset does not have.
        let ds = try FeatureDataset.open(data)
        XCTAssertThrowsError(try ds.variantIndex("long_fr")) {
            XCTAssertEqual("\($0)", "\(data)/manifest.json: no caption variant 'long_fr' (have short_en, long_en, long_de)")
        }
    }

    func testMissingShardAndMissingFile() throws {
        Tree.remove(data + "/shard-1")
        expectProblem(file: data + "/shard-1", containing: "missing: shard 'shard-1' is listed in manifest.json")
        dir.cleanUp()
        try setUpWithError()  // a fresh dataset
        Tree.remove(data + "/shard-2/image.npy")
        expectProblem(file: data + "/shard-2/image.npy", containing: "missing")
    }

    func testChecksumMismatchAndBadManifest() throws {
        let path = data + "/shard-2/llm.npy"
        var bytes = try Files.read(path)
        bytes[bytes.count - 3] ^= 0x40
        try Files.writeAtomically(path, bytes)
        XCTAssertNoThrow(try FeatureDataset.open(data))  // without checksums: headers and sizes only
        let found = CRC32.hex(bytes.withUnsafeBytes { CRC32.checksum($0) })
        expectProblem(file: path, containing: "crc32 does not match manifest.json: found \(found), expected", openFails: false)
        try Files.writeAtomically(data + "/manifest.json", Array("{\"format\": \"proclip-features\", \"version\": 1".utf8))
        expectProblem(file: data + "/manifest.json", containing: "not a valid manifest: invalid JSON")
        try Files.writeAtomically(data + "/manifest.json", Array("{\"format\": \"proclip-features\", \"version\": 1}".utf8))
        expectProblem(file: data + "/manifest.json", containing: "not a valid manifest: missing key 'description'")
    }

    /// Opening for training checks every listed file's CRC-32: one flipped byte anywhere (an
    /// `.npy` header, array data, concepts, captions) is refused with the file, the CRC found and
    /// the CRC expected; a file of another size is refused by its size. The intact dataset opens.
    func testOpeningForTrainingRefusesAFlippedByteNamingTheFile() throws {
        XCTAssertNoThrow(try FeatureDataset.open(data, verifyChecksums: true))
        let listed = ManifestChecksums.listed(data, try Manifest.read(data + "/manifest.json"))
        XCTAssertEqual(listed.count, 3 * 5, "every shard's image, clip_text, llm, concepts and captions")
        for (path, entry) in listed {
            let intact = try Files.read(path)
            for at in [10, intact.count / 2, intact.count - 1] {
                var bytes = intact
                bytes[at] ^= 0x01
                try Files.writeAtomically(path, bytes)
                let found = CRC32.hex(bytes.withUnsafeBytes { CRC32.checksum($0) })
                XCTAssertNotEqual(found, entry.crc32)
                XCTAssertThrowsError(try FeatureDataset.open(data, verifyChecksums: true), "\(path) byte \(at)") {
                    XCTAssertEqual("\($0)", "\(path): crc32 does not match manifest.json: found \(found), expected \(entry.crc32) "
                                   + "(the file is damaged or was changed after the manifest was written)")
                }
            }
            try Files.writeAtomically(path, intact + [0])
            XCTAssertThrowsError(try FeatureDataset.open(data, verifyChecksums: true)) {
                XCTAssertEqual("\($0)", "\(path): file is \(intact.count + 1) bytes, manifest.json says \(entry.bytes)")
            }
            try Files.writeAtomically(path, intact)
        }
        XCTAssertNoThrow(try FeatureDataset.open(data, verifyChecksums: true))
        // A missing shard is still named once, as the directory.
        Tree.remove(data + "/shard-1")
        XCTAssertThrowsError(try FeatureDataset.open(data, verifyChecksums: true)) {
            XCTAssertEqual("\($0)", "\(data)/shard-1: missing: shard 'shard-1' is listed in manifest.json")
        }
    }

    func testWritersLeaveNothingPartial() throws {
        let out = dir.sub("new")
        // NaN input: refused before any byte is written.
        var image = [Float](repeating: 0, count: 2 * Known.dEmbed)
        image[5] = .nan
        let clip = [Float](repeating: 0, count: 2 * 3 * Known.dEmbed), llm = [Float](repeating: 0, count: 2 * 3 * Known.dLLM)
        XCTAssertThrowsError(try DatasetWriter.create(at: out, dtype: .float32, dEmbed: Known.dEmbed, dLLM: Known.dLLM,
                                                      variants: Known.variants, description: "t") { w in
            try image.withUnsafeBufferPointer { i in
                try clip.withUnsafeBufferPointer { c in
                    try llm.withUnsafeBufferPointer { l in try w.addShard(name: "a", split: .train, rows: 2, image: i, clipText: c, llm: l) }
                }
            }
        }) { XCTAssertEqual("\($0)", "\(out)/a/image.npy: array 'image': row 1 holds NaN; nothing written") }
        // A failure after one shard was written.
        struct Stop: Error {}
        XCTAssertThrowsError(try DatasetWriter.create(at: out, dtype: .float16, dEmbed: Known.dEmbed, dLLM: Known.dLLM,
                                                      variants: Known.variants, description: "t") { w in
            let fine = [Float](repeating: 1, count: 2 * Known.dEmbed)
            try fine.withUnsafeBufferPointer { i in
                try clip.withUnsafeBufferPointer { c in
                    try llm.withUnsafeBufferPointer { l in try w.addShard(name: "a", split: .train, rows: 2, image: i, clipText: c, llm: l) }
                }
            }
            XCTAssertTrue(Files.exists(w.staging + "/a/llm.npy"))
            throw Stop()
        })
        // A value beyond float16 range.
        XCTAssertThrowsError(try DatasetWriter.create(at: out, dtype: .float16, dEmbed: Known.dEmbed, dLLM: Known.dLLM,
                                                      variants: Known.variants, description: "t") { w in
            let big = [Float](repeating: 1e6, count: 2 * Known.dEmbed)
            try big.withUnsafeBufferPointer { i in
                try clip.withUnsafeBufferPointer { c in
                    try llm.withUnsafeBufferPointer { l in try w.addShard(name: "a", split: .train, rows: 2, image: i, clipText: c, llm: l) }
                }
            }
        }) { XCTAssertTrue("\($0)".contains("beyond float16 range")) }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(left, ["d"], "left behind: \(left)")
        // An existing directory is never overwritten.
        let before = try treeContents(data)
        XCTAssertThrowsError(try Known.write(data)) { XCTAssertEqual("\($0)", "\(data): already exists; remove it or choose another directory") }
        XCTAssertEqual(try treeContents(data), before)
    }
}
