import ArgumentParser
import Basics
import Features
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// `proclip data …`: inspect and verify feature datasets.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect and verify feature datasets (manifest.json plus .npy shards).",
        subcommands: [DataInfoCommand.self, DataVerifyCommand.self])
}

/// `proclip data info DIR`: the manifest in brief, after the cheap checks of opening.
struct DataInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a dataset's dims, caption variants, splits, shards and content hash.")

    @Argument(help: "The dataset directory (holding manifest.json).")
    var directory: String

    func run() throws {
        let dataset: FeatureDataset
        do {
            dataset = try FeatureDataset.open(directory)
        } catch let e as FileError {
            printError(e.description)
            throw ExitCode.failure
        }
        let m = dataset.manifest
        print("dataset      \(directory)")
        print("description  \(m.description)")
        print("format       \(m.format) v\(m.version), \(m.dtype), checksum \(m.checksum)")
        print("dims         D_embed \(m.dEmbed), D_llm \(m.dLLM)")
        print("variants     \(m.variants.count): \(m.variants.joined(separator: ", "))")
        print("rows         \(m.rows) (train \(m.rows(in: .train)), eval \(m.rows(in: .eval))) in \(m.shards.count) shards")
        for s in m.shards {
            let bytes = s.files.values.reduce(0) { $0 + $1.bytes }
            print("  \(s.name.padding(16)) \(s.split.rawValue.padding(6)) \(String(s.rows).padding(8)) rows  \(bytes) bytes  files \(s.files.keys.sorted().joined(separator: " "))")
        }
        if let p = m.prompts {
            print("prompts      \(p.labels.count) in \(p.directory)/, \(p.heldOut.count) held out of training captions")
        }
        if let kind = m.source?["kind"], case .string(let k) = kind {
            print("source       \(k)\(k == "simulation" ? " (synthetic world, not real data)" : "")")
        }
        print("content hash \(m.contentHash)")
    }
}

/// `proclip data verify DIR`: every byte checked; one line per problem; exit 1 on any.
struct DataVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check shapes, dtypes, row counts, checksums, NaN/Inf and captions; exit 1 on any problem.")

    @Argument(help: "The dataset directory (holding manifest.json).")
    var directory: String

    func run() throws {
        let report = DatasetVerifier.verify(directory)
        for p in report.problems { printError(p.description) }
        if !report.problems.isEmpty {
            printError("\(directory): \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
            throw ExitCode.failure
        }
        print("\(directory): ok — \(report.rows) rows, \(report.bytes) bytes checksummed, no NaN/Inf, content hash \(report.contentHash ?? "?")")
    }
}

/// Writes one line to standard error.
func printError(_ line: String) {
    fputs(line + "\n", stderr)
}

extension String {
    /// Left-aligned in `width` columns.
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
