import XCTest
@testable import Checkpoints
import Model
import Tensors
import TestSupport
import Basics

/// The file format: a round trip is bit-identical, with and without byte shuffle; the metadata
/// comes back exactly; the payload is a safetensors file of the documented layout.
final class FormatTests: XCTestCase {
    func testRoundTripIsBitIdenticalWithAndWithoutShuffle() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let store = trainedStore()
        for shuffle in [true, false] {
            let path = dir.sub("c-\(shuffle).lz4")
            try CheckpointFile.write(store, meta: sampleMeta(), to: path, byteShuffle: shuffle, producer: "9.9.9")
            let back = ParameterStore(layout: store.layout)
            let h = try CheckpointFile.load(path, into: back)
            assertIdentical(store, back)
            XCTAssertEqual(h.meta, sampleMeta())
            XCTAssertEqual(h.model, tinyShape)
            XCTAssertEqual(h.byteShuffle, shuffle)
            XCTAssertEqual(h.producer, "9.9.9")
            XCTAssertEqual(h.created.count, 20, h.created)
            XCTAssertEqual(try CheckpointFile.verify(path), h)
            XCTAssertEqual(try CheckpointFile.readHeader(path), h)
        }
    }

    func testTensorTableNamesEveryParameterEMAAndMoment() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let store = trainedStore()
        let path = dir.sub("c.lz4")
        try CheckpointFile.write(store, meta: sampleMeta(), to: path, producer: "t")
        let h = try CheckpointFile.readHeader(path)
        let layout = store.layout
        let names = layout.entries.map(\.name)
        let image = layout.entries(in: [.image]).map(\.name)
        XCTAssertEqual(h.tensors.map(\.name),
                       names.map { "param/" + $0 } + image.map { "ema/" + $0 } + names.map { "exp_avg/" + $0 } + names.map { "exp_avg_sq/" + $0 })
        XCTAssertTrue(names.contains("text.text_adaptor.1.fn.3.weight"))
        XCTAssertTrue(names.contains("text.text_adaptor.2.weight"))     // final LayerNorm {L}
        XCTAssertTrue(names.contains("text.text_adaptor.3.bias"))       // projection {L+1}
        XCTAssertTrue(names.contains("visual.head.0.fn.0.weight"))
        let w = try XCTUnwrap(h.tensors.first { $0.name == "param/text.text_adaptor.0.fn.0.weight" })
        XCTAssertEqual(w.shape, [36, 12])
        XCTAssertEqual(w.storedDType, .u8)
        XCTAssertEqual(w.storedShape, [4, 36, 12])
        let scale = try XCTUnwrap(h.tensors.first { $0.name == "param/logit_scale" })
        XCTAssertEqual(scale.shape, [])
        XCTAssertEqual(scale.storedShape, [4])
    }

    func testPlainPayloadIsSafetensorsWithFloatTensorsAndMetadata() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let store = trainedStore()
        let path = dir.sub("c.lz4")
        try CheckpointFile.write(store, meta: sampleMeta(), to: path, byteShuffle: false, producer: "t")
        let payload = try decompress(path)
        let st = try SafeTensors(bytes: payload, source: "payload")
        let e = try XCTUnwrap(store.layout.entry(named: "visual.head.0.fn.0.weight"))
        XCTAssertEqual(try st.floats("param/" + e.name, shape: e.shape), store.values(e, in: store.params))
        XCTAssertEqual(try st.floats("exp_avg_sq/" + e.name, shape: e.shape), store.values(e, in: store.expAvgSq))
        XCTAssertEqual(try st.floats("ema/" + e.name, shape: e.shape), store.values(e, in: store.ema, shift: store.emaShift))
        XCTAssertEqual(st.metadata["byte_shuffle"], "false")
        XCTAssertEqual(st.metadata["rng_state"], "deadbeef01234567,0000000000000000,ffffffffffffffff")
        XCTAssertEqual(st.metadata["extra.note"], "a=b,c")
        XCTAssertEqual(st.metadata["format"], "proclip-checkpoint")
        XCTAssertEqual(st.metadata["model"], #"{"d_llm":12,"d_embed":6,"text_blocks":2,"text_expansion":3,"image_blocks":1,"image_expansion":2}"#)
        // ParameterStore reads the payload directly (param/ names, EMA from ema/).
        let back = ParameterStore(layout: store.layout)
        try back.load(from: st)
        XCTAssertEqual(back.params.toArray(), store.params.toArray())
        XCTAssertEqual(back.ema.toArray(), store.ema.toArray())
    }

    func testByteShuffleInvertsOnEveryRangeSplit() {
        var rng = SplitMix64(seed: 5)
        for n in [0, 1, 15, 16, 17, 33, 100, 1000] {
            let src = (0..<n).map { _ in Float(rng.normal()) }
            var planes = [UInt8](repeating: 0, count: 4 * n)
            let cut = n / 3 & ~15
            src.withUnsafeBytes { s in
                planes.withUnsafeMutableBytes { d in
                    ByteShuffle.shuffle(s.baseAddress!, d.baseAddress!, count: n, range: 0..<cut)
                    ByteShuffle.shuffle(s.baseAddress!, d.baseAddress!, count: n, range: cut..<n)
                }
            }
            src.withUnsafeBytes { s in
                for i in 0..<n { for k in 0..<4 { XCTAssertEqual(planes[k * n + i], s[4 * i + k], "n \(n) element \(i) byte \(k)") } }
            }
            var back = [Float](repeating: .nan, count: n)
            planes.withUnsafeBytes { p in
                back.withUnsafeMutableBytes { d in ByteShuffle.unshuffle(p.baseAddress!, d.baseAddress!, count: n, range: 0..<n) }
            }
            XCTAssertEqual(back.map(\.bitPattern), src.map(\.bitPattern))
        }
    }

    /// Reads of any size, across 4 MB blocks and at the very end of the file, give the content.
    func testFrameReaderReturnsTheContentInPiecesOfAnySize() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        var content = [UInt8](repeating: 7, count: 9 << 20 + 12345)
        var rng = SplitMix64(seed: 2)
        for i in stride(from: 0, to: content.count, by: 97) { content[i] = UInt8(truncatingIfNeeded: rng.next()) }
        let path = dir.sub("f.lz4")
        try recompress(content, to: path)
        for piece in [1_000_003, 4 << 20, 12345] {
            let r = try LZ4FrameReader(path: path)
            XCTAssertEqual(r.contentSize, content.count)
            var back = [UInt8](repeating: 0, count: content.count)
            var at = 0
            try back.withUnsafeMutableBytes { b in
                while at < content.count {
                    let n = min(piece, content.count - at)
                    try r.read(into: b.baseAddress! + at, count: n)
                    at += n
                }
            }
            try r.finish()
            XCTAssertTrue(back == content, "piece \(piece)")
        }
    }

    func testParallelUnshuffleMatchesTheSerialOne() {
        let before = Parallel.threads
        Parallel.threads = 3
        defer { Parallel.threads = before }
        let n = (1 << 18) + 37
        var rng = SplitMix64(seed: 9)
        let src = (0..<(4 * n)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var serial = [UInt8](repeating: 0, count: 4 * n), parallel = [UInt8](repeating: 1, count: 4 * n)
        src.withUnsafeBytes { s in
            serial.withUnsafeMutableBytes { ByteShuffle.unshuffle(s.baseAddress!, $0.baseAddress!, count: n, range: 0..<n) }
            parallel.withUnsafeMutableBytes { ByteShuffle.unshuffleParallel(s.baseAddress!, $0.baseAddress!, count: n) }
        }
        XCTAssertEqual(serial, parallel)
    }

    /// Byte shuffle is on by default because it shrinks trained-looking float32 state.
    func testShuffleShrinksTrainedLookingState() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let store = trainedStore(ModelShape(dLLM: 64, dEmbed: 32, textBlocks: 1, textExpansion: 4, imageBlocks: 1, imageExpansion: 2))
        let plain = try CheckpointFile.write(store, meta: sampleMeta(), to: dir.sub("p.lz4"), byteShuffle: false, producer: "t")
        let shuffled = try CheckpointFile.write(store, meta: sampleMeta(), to: dir.sub("s.lz4"), byteShuffle: true, producer: "t")
        XCTAssertLessThan(Double(shuffled), 0.95 * Double(plain), "shuffled \(shuffled) bytes, plain \(plain)")
        XCTAssertTrue(CheckpointOptions(producer: "t").byteShuffle)
    }

    func testWriterRefusesANonFiniteState() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let store = trainedStore()
        let e = try XCTUnwrap(store.layout.entry(named: "text.text_adaptor.1.fn.0.weight"))
        store.expAvg.base[e.offset + 13] = .nan
        for shuffle in [true, false] {
            let path = dir.sub("n-\(shuffle).lz4")
            let text = errorText { try CheckpointFile.write(store, meta: sampleMeta(), to: path, byteShuffle: shuffle, producer: "t") }
            XCTAssertEqual(text, "\(path): not saved: tensor 'exp_avg/text.text_adaptor.1.fn.0.weight' holds a non-finite value at index [1, 1]")
            XCTAssertFalse(Files.exists(path))
        }
    }

    func testMetadataAReaderWouldRefuseIsNotSaved() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        var meta = sampleMeta()
        meta.epochStep = -1
        let path = dir.sub("c.lz4")
        XCTAssertEqual(errorText { try CheckpointFile.write(trainedStore(), meta: meta, to: path, producer: "t") },
                       "\(path): not saved: metadata 'epoch_step' must be a non-negative integer, got -1")
        XCTAssertFalse(Files.exists(path))
    }

    func testLoadRefusesAnotherModelShape() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let path = dir.sub("c.lz4")
        try CheckpointFile.write(trainedStore(), meta: sampleMeta(), to: path, producer: "t")
        var other = tinyShape
        other.dLLM = 16
        let text = errorText { try CheckpointFile.load(path, into: ParameterStore(layout: ParameterLayout(other))) }
        XCTAssertTrue(text.hasPrefix("\(path): metadata 'model': the file holds {\"d_llm\":12"), text)
    }
}

/// The safetensors payload of a checkpoint, decoded by proclip's frame reader.
func decompress(_ path: String) throws -> [UInt8] {
    let r = try LZ4FrameReader(path: path)
    var out = [UInt8](repeating: 0, count: r.contentSize)
    try out.withUnsafeMutableBytes { try r.read(into: $0.baseAddress!, count: r.contentSize) }
    try r.finish()
    return out
}
