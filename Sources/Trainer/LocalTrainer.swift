import Basics
import Features
import Job
import JobConfig
import Model
import Tensors

/// Options of a single-process run.
public struct TrainOptions: Sendable {
    /// Stop after this many global steps (smoke runs and tests).
    public var maxSteps: Int?
    /// Split every step among this many simulated owners in this process (a check that the
    /// split changes nothing; 1 for ordinary training).
    public var simulatedWorkers = 1
    /// Show the live progress line.
    public var progress = true
    /// Evaluate on at most this many eval samples.
    public var evalSamples: Int?

    public init() {}
}

/// The whole curriculum in one process: the phase plan step by step, evaluation at every phase
/// end, and everything written under the run directory.
public final class LocalTrainer {
    public let config: JobConfig
    public let dataset: FeatureDataset
    public let run: RunDirectory
    public let options: TrainOptions
    public let plan: CurriculumPlan
    public let store: ParameterStore
    let layout: ParameterLayout
    let variantMap: [Int]
    let evaluator: Evaluator
    /// The baseline report, then one per phase end.
    public private(set) var reports: [EvalReport] = []

    public init(config: JobConfig, dataset: FeatureDataset, run: RunDirectory, options: TrainOptions) throws {
        self.config = config
        self.dataset = dataset
        self.run = run
        self.options = options
        variantMap = try DataCheck.variantMap(config: config, dataset: dataset)
        plan = try CurriculumPlan(config: config, trainCount: dataset.indices(of: .train).count)
        layout = ParameterLayout(config.model)
        store = ParameterStore(layout: layout)
        evaluator = try Evaluator(dataset: dataset, config: config, variantMap: variantMap, maxSamples: options.evalSamples)
    }

    /// Runs the plan (or its first `maxSteps` steps); returns the eval reports.
    @discardableResult
    public func train() throws -> [EvalReport] {
        store.initialize(seed: config.seed)
        try run.saveConfig(config.text)
        let baseline = evaluator.baseline()
        reports = [baseline]
        try run.writeEval(reports)
        run.log("proclip train: \(config.name), \(plan.phases.count) phase(s), \(plan.totalSteps) steps, config \(config.hash), data \(dataset.manifest.contentHash)")
        run.log(EvalTable.line(baseline))
        var progress = ProgressLine()
        progress.enabled = options.progress
        let total = options.maxSteps.map { min($0, plan.totalSteps) } ?? plan.totalSteps
        let started = MonotonicClock.now()
        var phaseStart = started
        var phaseSteps = 0
        var done = 0
        let loop = try TrainingLoop(config: config, dataset: dataset, store: store)
        func evaluate(_ phase: PlannedPhase, _ step: Int, stopped: Bool) throws {
            progress.finishLine()
            let report = evaluator.evaluate(store, model: "proclip \(config.name)", phase: phase.config.name + (stopped ? " (stopped)" : ""), step: step)
            reports.append(report)
            try run.writeEval(reports)
            run.log("after \(phase.config.name) (step \(step)): " + EvalTable.line(report))
            if options.progress { printErr("after \(phase.config.name) (step \(step)): " + EvalTable.line(report)) }
        }
        try loop.run(from: 0, to: total, executor: { phase in
            let pc = phase.config
            let header = "phase \(phase.index + 1)/\(self.plan.phases.count) '\(pc.name)' (\(pc.kind.rawValue)): \(phase.steps) steps, "
                + "\(phase.stepsPerEpoch) per epoch, batch \(pc.batch), group \(pc.loss.group)"
            self.run.log(header)
            progress.finishLine()
            if self.options.progress { printErr(header) }
            phaseStart = MonotonicClock.now()
            phaseSteps = 0
            return LocalGroup(layout: self.layout, settings: pc.loss, batch: pc.batch, workers: self.options.simulatedWorkers)
        }, onStep: { o in
            done = o.globalStep
            phaseSteps += 1
            try self.run.appendMetrics(o.json)
            let pc = o.phase.config
            let now = MonotonicClock.now()
            let rate = Double(pc.batch * phaseSteps) / (now - phaseStart)
            let eta = (now - started) / Double(o.globalStep) * Double(total - o.globalStep)
            let pos = o.phase.position(ofStep: o.phaseStep)
            progress.show("\(pc.name) \(o.phase.index + 1)/\(self.plan.phases.count) step \(o.phaseStep + 1)/\(o.phase.steps) (epoch \(pos.epoch + 1)) "
                          + ProgressLine.bar(Double(o.phaseStep + 1) / Double(o.phase.steps)) + " "
                          + o.terms.named(pc.kind).map { "\($0.0) \(compact($0.1))" }.joined(separator: " ")
                          + " | \(compact(rate, digits: 3)) samples/s | ETA \(ProgressLine.duration(eta))",
                          now: now, force: o.phaseStep + 1 == o.phase.steps)
        }, onPhaseEnd: { phase, step in
            try evaluate(phase, step, stopped: false)
        })
        if done < plan.totalSteps, let (phase, k) = plan.locate(globalStep: done), k > 0 {
            try evaluate(phase, done, stopped: true)
        }
        try run.flushMetrics()
        try run.writeParameters(store, name: "final.safetensors", config: config, step: done)
        run.log("done: \(done) steps in \(ProgressLine.duration(MonotonicClock.now() - started)); final.safetensors written")
        return reports
    }
}

func printErr(_ s: String) {
    var line = s
    line += "\n"
    fputs(line, stderr)
}

#if canImport(Glibc)
import Glibc
#endif
