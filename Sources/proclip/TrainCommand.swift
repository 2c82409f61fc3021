import ArgumentParser
import Features
import Job
import JobConfig
import Tensors
import Trainer

/// `proclip train`: the whole curriculum in one process.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Run a job's whole curriculum (inherit, then contrast) in this process.",
        discussion: """
            Writes under the run directory: config.yaml, metrics.jsonl (one line per step), eval.json \
            (the CLIP-text baseline, then one report per phase end), train.log and final.safetensors \
            (parameters under their PyTorch names). When the config's data.path is missing and the \
            config describes data.synthetic, the synthetic concept world (a simulation) is generated there first.
            """)

    @Option(help: "Job config (YAML).") var config: String
    @Option(help: "Run directory (default: runs/<config name>).") var runDir: String?
    @Option(help: "Dataset directory (default: the config's data.path).") var data: String?
    @Option(help: "Stop after N global steps (smoke runs).") var maxSteps: Int?
    @Option(help: "Threads for OpenBLAS and the element-wise kernels (default: all CPUs).") var threads: Int?
    @Option(help: "Evaluate on at most this many eval samples.") var evalSamples: Int?
    @Option(help: "Split every step among K simulated owners in this process (checks that the split changes nothing).")
    var simulateWorkers: Int = 1
    @Flag(help: "Reuse a run directory that already holds a run.") var overwrite = false
    @Flag(help: "No live progress line.") var quiet = false

    func validate() throws {
        if let m = maxSteps, m < 1 { throw ValidationError("--max-steps must be at least 1") }
        if simulateWorkers < 1 { throw ValidationError("--simulate-workers must be at least 1") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let t = threads ?? cpuCount()
        BLAS.useThreads(t)
        let job = try JobConfig.load(path: config)
        let dataset = try DatasetSource.open(config: job, path: data) { printError("proclip: " + $0) }
        let run = try RunDirectory(path: runDir ?? "runs/\(job.name)", overwrite: overwrite)
        var options = TrainOptions()
        options.maxSteps = maxSteps
        options.simulatedWorkers = simulateWorkers
        options.progress = !quiet
        options.evalSamples = evalSamples
        let trainer = try LocalTrainer(config: job, dataset: dataset, run: run, options: options)
        let reports = try trainer.train()
        print(EvalTable.markdown(reports.map { ($0.phase.map { "after \($0)" } ?? $0.model, $0) }, variants: job.data.variants))
        print("run directory: \(run.path)")
    }
}

/// Online CPUs (the default thread count).
func cpuCount() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }


#if canImport(Glibc)
import Glibc
#endif
