import ArgumentParser
import Basics
import Features
import Tensors

/// `proclip synth`: writes the synthetic concept world, a simulation, as a feature dataset.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Generate the synthetic concept world (a simulation, not real data) as feature shards.",
        discussion: """
            The world is a simulation: concepts with latent vectors; a random map plays CLIP (images see \
            every concept, CLIP text only a caption's first tokens and only English words) and another \
            plays the LLM embedder (every token, translations close). See docs/synthetic-world.md. \
            Same parameters and seed give byte-identical files.
            """)

    @Option(help: "Output directory (must not exist).") var out: String
    @Option(help: "Training pairs.") var pairs: Int
    @Option(help: "Seed of the whole world.") var seed: UInt64
    @Option(help: "Evaluation pairs (default: pairs / 4).") var evalPairs: Int?
    @Option(help: "Rows per shard.") var shardRows: Int = SynthWorldSpec().shardRows
    @Option(help: "Number of concepts.") var concepts: Int = SynthWorldSpec().concepts
    @Option(help: "Concepts never named in training captions.") var heldOut: Int = SynthWorldSpec().heldOutConcepts
    @Option(help: "D_embed, CLIP's joint space.") var dEmbed: Int = SynthWorldSpec().dEmbed
    @Option(help: "D_llm, the LLM embedding.") var dLlm: Int = SynthWorldSpec().dLLM
    @Option(help: "Tokens CLIP's text encoder reads.") var clipTokens: Int = SynthWorldSpec().clipTokenLimit
    @Option(help: "Stored element type: float32 or float16.") var dtype: String = "float32"

    func validate() throws {
        guard NpyDType(rawValue: dtype) == .float32 || NpyDType(rawValue: dtype) == .float16 else {
            throw ValidationError("--dtype must be float32 or float16")
        }
        do { try spec().validate() } catch let e as SynthSpecError { throw ValidationError(e.description) }
    }

    /// The world the flags describe; every other parameter keeps its `SynthWorldSpec` default.
    func spec() -> SynthWorldSpec {
        var s = SynthWorldSpec()
        s.seed = seed
        s.pairs = pairs
        s.evalPairs = evalPairs ?? pairs / 4
        s.shardRows = shardRows
        s.concepts = concepts
        s.heldOutConcepts = heldOut
        s.dEmbed = dEmbed
        s.dLLM = dLlm
        s.clipTokenLimit = clipTokens
        s.dtype = NpyDType(rawValue: dtype) ?? .float32
        return s
    }

    func run() throws {
        do {
            let m = try SynthGenerator.generate(spec(), to: out)
            print("\(out): simulation written — \(m.rows(in: .train)) train + \(m.rows(in: .eval)) eval pairs in \(m.shards.count) shards, content hash \(m.contentHash)")
        } catch let e as FileError {
            printError(e.description)
            throw ExitCode.failure
        }
    }
}
