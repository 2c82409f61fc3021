import XCTest
@testable import Checkpoints
import Model
import Tensors
import TestSupport
import Basics

/// Damaged files are detected, each with one line naming the file and the problem.
final class CorruptionTests: XCTestCase {
    var dir: TempDir!
    var path = ""

    override func setUpWithError() throws {
        dir = TempDir()
        path = dir.sub("ckpt-000000000120.lz4")
        try CheckpointFile.write(trainedStore(), meta: sampleMeta(), to: path, producer: "t")
    }

    override func tearDown() { dir.cleanUp() }

    /// The one-line error `verify` gives for the file at `path`.
    func problem(_ p: String? = nil) -> String {
        let text = errorText { try CheckpointFile.verify(p ?? path) }
        XCTAssertFalse(text.contains("\n"), "not one line: \(text)")
        return text
    }

    func testFlippedByteInTheMiddleIsDetected() throws {
        let size = try Files.read(path).count
        for offset in [size / 2, size / 3, size - 3] {
            try CheckpointFile.write(trainedStore(), meta: sampleMeta(), to: path, producer: "t")
            try flipByte(path, at: offset)
            let text = problem()
            XCTAssertTrue(text.hasPrefix("\(path): corrupt: "), text)
            XCTAssertTrue(text.contains("checksum does not match"), text)
        }
    }

    func testTruncatedFileIsDetected() throws {
        let size = try Files.read(path).count
        for keep in [size - 1, size - 4, size / 2, 100, 7] {
            truncateFile(path, to: keep)
            let text = problem()
            XCTAssertTrue(text.hasPrefix("\(path): truncated: the file ends after \(keep) bytes") || text.hasPrefix("\(path): not an LZ4 frame"), text)
        }
        truncateFile(path, to: 0)
        XCTAssertEqual(problem(), "\(path): not an LZ4 frame: file is 0 bytes")
    }

    func testMissingFileIsDetected() {
        XCTAssertEqual(problem(dir.sub("nothing.lz4")), "\(dir.sub("nothing.lz4")): missing")
    }

    func testWrongMagicIsDetected() throws {
        // An uncompressed safetensors file is refused.
        let plain = dir.sub("plain.safetensors")
        try CheckpointFile.export(path, to: plain, inferenceOnly: false)
        XCTAssertTrue(problem(plain).hasPrefix("\(plain): not an LZ4 frame: starts with bytes"), problem(plain))
        try flipByte(path, at: 1)
        XCTAssertEqual(problem(), "\(path): not an LZ4 frame: starts with bytes 4 dd 4d 18, expected 04 22 4d 18")
    }

    func testTrailingBytesAreDetected() throws {
        var bytes = try Files.read(path)
        bytes += [1, 2, 3]
        try Files.writeAtomically(path, bytes)
        XCTAssertEqual(problem(), "\(path): 3 unexpected bytes after the end of the LZ4 frame")
    }

    /// Payloads that are valid LZ4 but not a valid checkpoint: each refused naming the field.
    func testPayloadProblemsNameTheField() throws {
        let payload = try decompress(path)
        let st = try SafeTensors(bytes: payload, source: "p")
        func rewrite(_ edit: (inout [String: String], inout [(String, DType, [Int], [UInt8])]) -> Void) throws -> String {
            var meta = st.metadata
            var tensors = try CheckpointFile.readHeader(path).tensors.map { t in (t.name, t.storedDType, t.storedShape, Array(try st.rawBytes(t.name))) }
            edit(&meta, &tensors)
            var w = SafeTensorsWriter()
            w.metadata = meta
            for t in tensors { w.add(t.0, dtype: t.1, shape: t.2, bytes: t.3) }
            let out = dir.sub("edited.lz4")
            try recompress(w.serialize(), to: out)
            return problem(out)
        }
        let out = dir.sub("edited.lz4")
        XCTAssertEqual(try rewrite { m, _ in m["step"] = "12x" }, "\(out): metadata 'step': expected a non-negative integer, got '12x'")
        XCTAssertEqual(try rewrite { m, _ in m["epoch"] = nil }, "\(out): metadata 'epoch': missing")
        XCTAssertEqual(try rewrite { m, _ in m["format_version"] = "2" }, "\(out): metadata 'format_version': version 2 is not one this proclip reads (1...1)")
        XCTAssertEqual(try rewrite { m, _ in m["surprise"] = "1" }, "\(out): metadata 'surprise': unknown key (format version 1 has no such entry)")
        XCTAssertEqual(try rewrite { m, _ in m["byte_shuffle"] = "false" },
                       "\(out): tensor 'param/text.text_adaptor.0.ln.weight': expected dtype F32 (byte_shuffle false), got U8")
        XCTAssertEqual(try rewrite { _, t in t.removeLast() }, "\(out): tensor 'exp_avg_sq/logit_scale' is missing")
        XCTAssertEqual(try rewrite { _, t in t[0].2 = [4, 3, 4] }, "\(out): tensor 'param/text.text_adaptor.0.ln.weight': expected shape [4, 12], got [4, 3, 4]")
        XCTAssertEqual(try rewrite { _, t in t.append(("grad/x", .u8, [4], [0, 0, 0, 0])) }, "\(out): unexpected tensor 'grad/x' (1 not in the model's plan)")
        XCTAssertEqual(try rewrite { m, _ in m["model"] = #"{"d_llm":12}"# },
                       "\(out): metadata 'model': expected the keys d_llm, d_embed, text_blocks, text_expansion, image_blocks, image_expansion, got d_llm")
        // A NaN in a shuffled tensor: set the exponent planes of element 5 of the first weight.
        let nan = try rewrite { _, t in
            let n = t[2].3.count / 4
            t[2].3[3 * n + 5] = 0x7F
            t[2].3[2 * n + 5] = 0xC0
        }
        XCTAssertTrue(nan.hasPrefix("\(out): tensor 'param/text.text_adaptor.0.fn.0.weight': non-finite value nan"), nan)
        XCTAssertTrue(nan.hasSuffix(" at index [0, 5]"), nan)
    }

    func testErrorsNeverLeaveAnExportBehind() throws {
        try flipByte(path, at: try Files.read(path).count / 2)
        let out = dir.sub("out.safetensors")
        XCTAssertTrue(errorText { try CheckpointFile.export(path, to: out, inferenceOnly: true) }.contains("corrupt"))
        XCTAssertFalse(Files.exists(out))
        XCTAssertEqual(try CheckpointDirectory(dir.path).names().filter { $0.contains("tmp") }, [])
    }
}

/// Writes `payload` as one LZ4 frame the way checkpoints are written.
func recompress(_ payload: [UInt8], to path: String) throws {
    try Files.writeAtomically(path, [])
    let fd = open(path, O_WRONLY | O_TRUNC)
    defer { close(fd) }
    let w = try LZ4FrameWriter(fd: fd, path: path, contentSize: payload.count)
    try payload.withUnsafeBytes { try w.write($0) }
    try w.finish()
}
