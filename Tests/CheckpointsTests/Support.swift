import XCTest
@testable import Checkpoints
import Model
import Tensors
import Basics
#if canImport(Glibc)
import Glibc
#endif

/// A small model: two text blocks, one image block; odd sizes so no tensor is a multiple of 16.
let tinyShape = ModelShape(dLLM: 12, dEmbed: 6, textBlocks: 2, textExpansion: 3, imageBlocks: 1, imageExpansion: 2)

/// A store of `shape` holding trained-looking values: weights ~ N(0, 0.02²), first moments
/// ~ N(0, 1e-8), second moments their squares, the EMA near the head. Seeded.
func trainedStore(_ shape: ModelShape = tinyShape, seed: UInt64 = 1) -> ParameterStore {
    let store = ParameterStore(layout: ParameterLayout(shape))
    var rng = SplitMix64(seed: seed)
    for e in store.layout.entries {
        for i in 0..<e.count {
            store.params.base[e.offset + i] = Float(0.02 * rng.normal())
            let m = 1e-4 * rng.normal()
            store.expAvg.base[e.offset + i] = Float(m)
            store.expAvgSq.base[e.offset + i] = Float(m * m + 1e-12)
        }
    }
    for e in store.layout.entries(in: [.image]) {
        for i in e.offset..<(e.offset + e.count) { store.ema.base[i - store.emaShift] = store.params.base[i] + Float(1e-3 * rng.normal()) }
    }
    return store
}

/// A metadata value with every field set to something recognisable.
func sampleMeta(step: Int = 120, phaseEnd: Bool = false) -> CheckpointMeta {
    CheckpointMeta(step: step, phaseIndex: 1, phaseName: "contrast", phaseStep: step % 100, phaseEnd: phaseEnd, epoch: 2,
                   epochStep: 7, optimizerStep: step % 100 + 1, rngState: [0xDEAD_BEEF_0123_4567, 0, UInt64.max],
                   config: "name: demo\nseed: 7\n# \"quoted\" ünïcode\n", configHash: "0123456789abcdef",
                   manifestHash: "fedcba9876543210", extra: ["lr_scale": "0.5", "note": "a=b,c"])
}

/// Whether two stores hold bit-identical parameters, moments and EMA (padding included).
func assertIdentical(_ a: ParameterStore, _ b: ParameterStore, file: StaticString = #filePath, line: UInt = #line) {
    for (x, y, what) in [(a.params, b.params, "params"), (a.expAvg, b.expAvg, "exp_avg"), (a.expAvgSq, b.expAvgSq, "exp_avg_sq"), (a.ema, b.ema, "ema")] {
        XCTAssertEqual(x.count, y.count, what, file: file, line: line)
        XCTAssertEqual(memcmp(x.base, y.base, 4 * min(x.count, y.count)), 0, "\(what) differ", file: file, line: line)
    }
}

/// Rewrites byte `offset` of a file with its complement.
func flipByte(_ path: String, at offset: Int) throws {
    var bytes = try Files.read(path)
    bytes[offset] ^= 0xFF
    try Files.writeAtomically(path, bytes)
}

/// Keeps the first `count` bytes of a file.
func truncateFile(_ path: String, to count: Int) {
    XCTAssertEqual(truncate(path, off_t(count)), 0)
}

/// The message of the error `body` throws, or "no error".
func errorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch {
        return "\(error)"
    }
}
