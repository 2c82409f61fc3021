import ArgumentParser
import FoundationEssentials
import Tensors
import Trainer

/// `proclip report`: one Markdown table from the eval.json of several runs (the README's
/// comparison table).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Tabulate the eval reports of runs: the baseline, then every phase end of each run.",
        discussion: "Image→text recall@1 per caption variant (and text→image with --both-directions), zero-shot, held-out, drift.")

    @Argument(help: "Run directories (each holding eval.json).") var runs: [String]
    @Option(help: "Caption variants to show, comma-separated (default: all of the first run's).") var variants: String?
    @Flag(help: "Also show text→image recall@1.") var bothDirections = false

    func run() throws {
        var rows: [(String, EvalReport)] = []
        for (i, dir) in runs.enumerated() {
            let path = dir + "/eval.json"
            let reports: [EvalReport]
            do {
                reports = try JSONDecoder().decode([EvalReport].self, from: Data(try Files.read(path)))
            } catch let e as FileError {
                throw e
            } catch {
                throw FileError(path, "not an eval report list: \(error)")
            }
            let name = dir.split(separator: "/").last.map(String.init) ?? dir
            for r in reports {
                if r.phase == nil {
                    if i == 0 { rows.append(("CLIP-text baseline", r)) }
                } else {
                    rows.append(("\(name): after \(r.phase!)", r))
                }
            }
        }
        guard let first = rows.first?.1 else { throw ValidationError("no reports found") }
        let shown = variants.map { $0.split(separator: ",").map(String.init) } ?? first.variants.keys.sorted()
        print(EvalTable.markdown(rows, variants: shown, bothDirections: bothDirections))
    }
}
