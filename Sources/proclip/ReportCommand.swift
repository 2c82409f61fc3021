import ArgumentParser
import Basics
import FoundationEssentials
import Job
import Tensors
import Trainer

/// `proclip report`: one Markdown table from the eval.json of several runs (the README's
/// comparison table).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Tabulate the eval reports of runs: the baseline, then every phase end of each run.",
        discussion: """
            Rows: the CLIP-text baseline and every phase end of the first run, then the last report of each \
            other run. Columns: image→text recall@1 per caption variant (and text→image with \
            --both-directions), zero-shot, held-out, drift. Name a run's rows with DIR=LABEL.
            """)

    @Argument(help: "Run directories (each holding eval.json), optionally DIR=LABEL.") var runs: [String]
    @Option(help: "Caption variants to show, comma-separated (default: all of the first run's).") var variants: String?
    @Flag(help: "Also show text→image recall@1.") var bothDirections = false

    func run() throws {
        var rows: [(String, EvalReport)] = []
        for (i, arg) in runs.enumerated() {
            let parts = arg.split(separator: "=", maxSplits: 1).map(String.init)
            let dir = parts[0]
            let path = dir + "/eval.json"
            let reports: [EvalReport]
            do {
                reports = try JSONDecoder().decode([EvalReport].self, from: Data(try Files.read(path)))
            } catch let e as FileError {
                throw e
            } catch {
                throw FileError(path, "not an eval report list: \(error)")
            }
            let name = parts.count > 1 ? parts[1] : (dir.split(separator: "/").last.map(String.init) ?? dir)
            if i == 0 {
                for r in reports {
                    rows.append(r.phase.map { ("\(name) after \($0)", r) } ?? ("CLIP-text baseline", r))
                }
            } else if let last = reports.last(where: { $0.phase != nil }) {
                rows.append((name, last))
            }
        }
        guard let first = rows.first?.1 else { throw ValidationError("no reports found") }
        let shown = variants.map { $0.split(separator: ",").map(String.init) } ?? first.variants.keys.sorted()
        print(EvalTable.markdown(rows, variants: shown, bothDirections: bothDirections))
    }
}
