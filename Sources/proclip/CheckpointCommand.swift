import ArgumentParser
import Basics
import Checkpoints
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// `proclip checkpoint …`: look into, check and export checkpoint files.
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Inspect, verify and export checkpoints (LZ4-compressed safetensors).",
        discussion: """
            A checkpoint is one LZ4 frame whose content is a safetensors file: `lz4 -d ckpt.lz4 > \
            ckpt.safetensors` gives a file any safetensors reader opens. It holds param/<name>, ema/<name> \
            (the image head's EMA teacher), exp_avg/<name> and exp_avg_sq/<name>, and metadata: step, \
            phase, epoch, position in the epoch, RNG state, config and hashes. With byte_shuffle true \
            (the default), each float32 tensor is stored as U8 [4, *shape] byte planes; `export` writes \
            plain float32. PATH may be a checkpoint directory: inspect and export then use the newest \
            checkpoint that verifies. See docs/checkpoints.md.
            """,
        subcommands: [CheckpointInspect.self, CheckpointVerify.self, CheckpointExport.self, CheckpointWriteTest.self])
}

/// `proclip checkpoint inspect PATH`: metadata and tensor table, from the header alone.
struct CheckpointInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a checkpoint's metadata and tensor table (name, dtype, shape, bytes).",
        discussion: "Reads only the header; `verify` checks every byte.")

    @Argument(help: "A checkpoint file, or a checkpoint directory (its newest valid checkpoint).") var path: String
    @Flag(help: "Also print the job config stored in the checkpoint.") var showConfig = false

    func run() throws {
        let h: CheckpointHeader
        do { h = try CheckpointFile.readHeader(try resolveCheckpoint(path)) } catch let e as FileError { fail(e) }
        let m = h.meta
        print("checkpoint     \(h.path)")
        print("format         proclip-checkpoint, written by proclip \(h.producer) at \(h.created)")
        print("step           \(m.step) — phase \(m.phaseIndex) '\(m.phaseName)' step \(m.phaseStep)\(m.phaseEnd ? " (end of phase)" : "")")
        print("epoch          \(m.epoch), \(m.epochStep) steps into it; optimizer step \(m.optimizerStep)")
        print("model          d_llm \(h.model.dLLM), d_embed \(h.model.dEmbed), text blocks \(h.model.textBlocks) × \(h.model.textExpansion), "
              + "image blocks \(h.model.imageBlocks) × \(h.model.imageExpansion)")
        print("config hash    \(m.configHash.isEmpty ? "(none)" : m.configHash)   manifest hash \(m.manifestHash.isEmpty ? "(none)" : m.manifestHash)")
        print("rng state      \(m.rngState.isEmpty ? "(none)" : m.rngState.map { String($0, radix: 16) }.joined(separator: " "))")
        for k in m.extra.keys.sorted() { print("extra          \(k) = \(m.extra[k]!)") }
        let ratio = Double(h.contentBytes) / Double(max(h.fileBytes, 1))
        print("byte shuffle   \(h.byteShuffle ? "yes (float32 tensors stored as U8 [4, *shape] byte planes)" : "no")")
        print("size           \(h.fileBytes) bytes on disk, \(h.contentBytes) bytes of safetensors (ratio \(fixed(ratio, 3)))")
        if showConfig { print("config:\n" + m.config) }
        let width = max(4, h.tensors.map(\.name.count).max() ?? 0) + 2
        print("\(h.tensors.count) tensors:")
        print("  " + "name".padding(width) + "dtype".padding(6) + "shape".padding(16) + "bytes".padding(12) + "stored as")
        for t in h.tensors {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            let stored = t.storedDType.rawValue + " [" + t.storedShape.map(String.init).joined(separator: ", ") + "]"
            print("  " + t.name.padding(width) + "F32".padding(6) + shape.padding(16) + String(t.bytes).padding(12) + stored)
        }
    }
}

/// `proclip checkpoint verify PATH`: every byte checked; one line per problem; exit 1 on any.
struct CheckpointVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a checkpoint completely (LZ4 checksums, structure, metadata, finite values); exit 1 on any problem.",
        discussion: """
            For a directory, every checkpoint in it is checked, `latest` must name one that exists, and \
            the newest valid checkpoint is reported.
            """)

    @Argument(help: "A checkpoint file or a checkpoint directory.") var path: String

    func run() throws {
        guard isDirectory(path) else {
            do {
                let h = try CheckpointFile.verify(path)
                print("\(path): ok — step \(h.meta.step), \(h.tensors.count) tensors, \(h.contentBytes) bytes verified")
            } catch let e as FileError { fail(e) }
            return
        }
        let dir = CheckpointDirectory(path)
        var problems = 0
        do {
            let entries = try dir.entries()
            for e in entries {
                do { try CheckpointFile.verify(dir.file(e.name)) } catch {
                    printError("\(error)")
                    problems += 1
                }
            }
            if let l = try dir.latestName(), !entries.contains(where: { $0.name == l }) {
                printError("\(dir.file(l)): missing (named by \(dir.latestPath))")
                problems += 1
            }
            let chosen = dir.newestValid().header
            print("\(path): \(entries.count) checkpoints, \(problems) problem\(problems == 1 ? "" : "s"); newest valid: \(chosen?.path ?? "none")")
        } catch let e as FileError { fail(e) }
        if problems > 0 { throw ExitCode.failure }
    }
}

/// `proclip checkpoint export PATH --out FILE`: plain safetensors for PyTorch and other tools.
struct CheckpointExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as plain float32 safetensors (uncompressed, never shuffled).",
        discussion: """
            The checkpoint is verified as it is read; a corrupt one leaves no output. With \
            --inference-only, only the parameters are written, under their bare PyTorch names \
            (text.text_adaptor.*, visual.head.*, logit_scale), ready for load_state_dict; otherwise \
            every tensor under its checkpoint name (param/, ema/, exp_avg/, exp_avg_sq/) with the metadata.
            """)

    @Argument(help: "A checkpoint file, or a checkpoint directory (its newest valid checkpoint).") var path: String
    @Option(help: "Output file (.safetensors); replaced atomically.") var out: String
    @Flag(help: "Only the parameters, under bare PyTorch names (no EMA teacher, no optimizer state).") var inferenceOnly = false

    func run() throws {
        do {
            let r = try CheckpointFile.export(try resolveCheckpoint(path), to: out, inferenceOnly: inferenceOnly)
            print("\(out): \(r.tensors) tensors, \(r.bytes) bytes from step \(r.header.meta.step) of \(r.header.path)")
        } catch let e as FileError { fail(e) }
    }
}

/// A checkpoint file itself, or for a directory its newest valid checkpoint (warnings on stderr).
func resolveCheckpoint(_ path: String) throws -> String {
    guard isDirectory(path) else { return path }
    let s = CheckpointDirectory(path).newestValid()
    for w in s.warnings { printError("warning: " + w) }
    guard let h = s.header else { throw FileError(path, "no checkpoint in the directory verifies") }
    return h.path
}

func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// Prints a file error as one line and exits with status 1.
func fail(_ e: FileError) -> Never {
    printError(e.description)
    CheckpointCommand.exit(withError: ExitCode.failure)
}

/// `x` with `digits` decimals.
func fixed(_ x: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    return "\((x * p).rounded() / p)"
}
