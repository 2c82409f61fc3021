import ArgumentParser
import Basics
import FoundationEssentials
import Job
import JobConfig
import Model
import Tensors
import Trainer

/// `proclip eval`: retrieval, zero-shot and drift for the CLIP-text baseline and a trained model.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate the CLIP-text baseline and trained parameters on the eval split.",
        discussion: """
            Image→text and text→image recall@1/5/10 per caption variant, zero-shot top-1 over the concept \
            prompts, top-1 on held-out concepts, and the mean cosine between the tuned and the original \
            image embeddings. Without --params, the run directory's final.safetensors is used when present.
            """)

    @Option(help: "Job config (YAML).") var config: String
    @Option(help: "Trained parameters (safetensors).") var params: String?
    @Option(help: "Run directory to take final.safetensors from (default: runs/<config name>).") var runDir: String?
    @Option(help: "Dataset directory (default: the config's data.path).") var data: String?
    @Option(help: "Evaluate on at most this many eval samples.") var evalSamples: Int?
    @Flag(help: "Print JSON (a list: the baseline, then the model).") var json = false

    func run() throws {
        let job = try JobConfig.load(path: config)
        let dataset = try DatasetSource.open(config: job, path: data) { printError("proclip: " + $0) }
        let map = try DataCheck.variantMap(config: job, dataset: dataset)
        let evaluator = try Evaluator(dataset: dataset, config: job, variantMap: map, maxSamples: evalSamples)
        var reports = [evaluator.baseline()]
        let path = params ?? (runDir ?? "runs/\(job.name)") + "/final.safetensors"
        if params != nil || Files.exists(path) {
            let store = ParameterStore(layout: ParameterLayout(job.model))
            try store.load(from: SafeTensors(path: path))
            reports.append(evaluator.evaluate(store, model: "proclip \(job.name)", phase: nil, step: nil))
        } else {
            printError("proclip eval: no trained parameters at \(path); reporting the baseline only")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
        } else {
            print(EvalTable.markdown(reports.map { ($0.model, $0) }, variants: job.data.variants))
        }
    }
}
