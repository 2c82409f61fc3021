import ArgumentParser
import Checkpoints
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// `proclip checkpoint _write-test` (hidden): saves checkpoints of a synthetic state in a loop,
/// printing `saved <file>` after each, so a test can kill it with SIGKILL in the middle of a
/// write and check what the directory holds. The state is noise (so it hardly compresses and
/// each write takes a while), except that the first parameter of step k's checkpoint is k + 0.5.
struct CheckpointWriteTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_write-test", abstract: "Save checkpoints in a loop (for crash tests).", shouldDisplay: false)

    @Option(help: "Checkpoint directory.") var dir: String
    @Option(help: "Approximate state size in MB (parameters, EMA and both moments).") var megabytes: Int = 64
    @Option(help: "Checkpoints to save.") var saves: Int = 1000
    @Option(help: "Newest checkpoints kept.") var keepLast: Int = 2
    @Flag(inversion: .prefixedNo, help: "Byte-shuffle tensors.") var shuffle = true

    func run() throws {
        let store = ParameterStore(layout: ParameterLayout(shapeForState(bytes: Double(megabytes) * 1e6, expansion: 4, dEmbed: 64)))
        var options = CheckpointOptions(producer: proclipVersion)
        options.keepLast = keepLast
        options.byteShuffle = shuffle
        options.backgroundNice = 0
        let writer = try CheckpointWriter(directory: dir, layout: store.layout, options: options)
        for name in writer.cleaned { print("cleaned \(name)") }
        var rng = SplitMix64(seed: 1)
        for s in [store.params, store.expAvg, store.expAvgSq] {
            for i in 0..<s.count { s.base[i] = Float(bitPattern: 0x3C00_0000 | UInt32(truncatingIfNeeded: rng.next() >> 41)) }
        }
        store.resetEMA()
        for k in 1...max(saves, 1) {
            store.params.base[0] = Float(k) + 0.5
            writer.save(store, meta: CheckpointMeta(step: k, phaseIndex: 0, phaseName: "inherit", phaseStep: k, epoch: 0, epochStep: k,
                                                   optimizerStep: k, rngState: [UInt64(k)], config: "", configHash: "", manifestHash: ""))
            for outcome in writer.finish() {
                switch outcome {
                case .saved(let s): print("saved \(s.path.split(separator: "/").last!)")
                case .failed(_, let e): fail(e)
                }
            }
            fflush(stdout)
        }
    }
}

/// A model shape whose parameters, both Adam moments and EMA take about `bytes`: one text block
/// of the given expansion, one image block; `D_llm` a multiple of 64.
func shapeForState(bytes: Double, expansion: Int, dEmbed: Int) -> ModelShape {
    // Three slabs of about 2·expansion·D² floats each (the text block dominates).
    let d = (bytes / (3 * 4 * 2 * Double(expansion))).squareRoot()
    let dLLM = max(64, Int((d / 64).rounded()) * 64)
    return ModelShape(dLLM: dLLM, dEmbed: dEmbed, textBlocks: 1, textExpansion: expansion, imageBlocks: 1, imageExpansion: 4)
}
