import Features
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
        let scratch = AdamWScratch(layout: layout)
        let total = options.maxSteps.map { min($0, plan.totalSteps) } ?? plan.totalSteps
        let started = MonotonicClock.now()
        var global = 0
        for phase in plan.phases where global < total {
            let pc = phase.config
            let group = LocalGroup(layout: layout, settings: pc.loss, batch: pc.batch, workers: options.simulatedWorkers)
            let feeder = try BatchFeeder(dataset: dataset, phase: phase, jobSeed: config.seed, variantMap: variantMap,
                                         maxRows: pc.batch)
            if pc.resetOptimizer { store.resetMoments() }
            let header = "phase \(phase.index + 1)/\(plan.phases.count) '\(pc.name)' (\(pc.kind.rawValue)): \(phase.steps) steps, "
                + "\(phase.stepsPerEpoch) per epoch, batch \(pc.batch), group \(pc.loss.group)"
            run.log(header)
            progress.finishLine()
            if options.progress { printErr(header) }
            var t = 0
            let phaseStart = MonotonicClock.now()
            for k in 0..<phase.steps where global < total {
                let t0 = MonotonicClock.now()
                for e in group.engines { feeder.fill(e, step: k) }
                let terms = group.step(store: store)
                guard terms.total.isFinite else {
                    throw TrainingError("phase '\(pc.name)' step \(k): the loss is \(terms.total); stopping (no parameters were changed by this step)")
                }
                t += 1
                let factor = phase.schedule.factor(at: k)
                let norm = AdamW.step(store: store, grads: group.grads.base, groups: pc.train, settings: pc.optimizer,
                                      t: t, lrFactor: factor, emaAlpha: pc.emaAlpha, scratch: scratch)
                global += 1
                let now = MonotonicClock.now()
                let dt = now - t0
                run.appendMetrics(metricsLine(phase: phase, k: k, global: global, terms: terms, factor: factor, norm: norm, seconds: dt))
                let rate = Double(pc.batch * (k + 1)) / (now - phaseStart)
                let eta = (now - started) / Double(global) * Double(total - global)
                let pos = phase.position(ofStep: k)
                progress.show("\(pc.name) \(phase.index + 1)/\(plan.phases.count) step \(k + 1)/\(phase.steps) (epoch \(pos.epoch + 1)) "
                              + ProgressLine.bar(Double(k + 1) / Double(phase.steps)) + " "
                              + terms.named(pc.kind).map { "\($0.0) \(compact($0.1))" }.joined(separator: " ")
                              + " | \(compact(rate, digits: 3)) samples/s | ETA \(ProgressLine.duration(eta))",
                              now: now, force: k + 1 == phase.steps)
            }
            progress.finishLine()
            let ended = global == phase.firstGlobalStep + phase.steps
            let report = evaluator.evaluate(store, model: "proclip \(config.name)", phase: pc.name + (ended ? "" : " (stopped)"), step: global)
            reports.append(report)
            try run.writeEval(reports)
            run.log("after \(pc.name) (step \(global)): " + EvalTable.line(report))
            if options.progress { printErr("after \(pc.name) (step \(global)): " + EvalTable.line(report)) }
        }
        try run.writeParameters(store, name: "final.safetensors", config: config, step: global)
        run.log("done: \(global) steps in \(ProgressLine.duration(MonotonicClock.now() - started)); final.safetensors written")
        return reports
    }

    func metricsLine(phase: PlannedPhase, k: Int, global: Int, terms: LossTerms, factor: Double, norm: Double, seconds: Double) -> String {
        let pc = phase.config
        let loss = terms.named(pc.kind).map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        let lr = pc.train.groups.map { "\"\($0.name)\":\((pc.optimizer.lr[$0] ?? 0) * factor)" }.joined(separator: ",")
        let scale = Double(store.params.base[layout.logitScale])
        let pos = phase.position(ofStep: k)
        return "{\"phase\":\"\(pc.name)\",\"phase_index\":\(phase.index),\"step\":\(global),\"phase_step\":\(k + 1),"
            + "\"epoch\":\(pos.epoch),\"loss\":{\(loss)},\"lr\":{\(lr)},\"logit_scale\":\(scale),\"grad_norm\":\(norm),"
            + "\"samples_per_second\":\(Double(pc.batch) / seconds),\"step_seconds\":\(seconds)}"
    }
}

/// Checks that a dataset serves a job: dims, caption variants.
public enum DataCheck {
    /// The manifest index of each of the job's caption variants; an error names what is missing.
    public static func variantMap(config: JobConfig, dataset: FeatureDataset) throws -> [Int] {
        let m = dataset.manifest
        guard m.dEmbed == config.model.dEmbed, m.dLLM == config.model.dLLM else {
            throw TrainingError("\(dataset.directory)/manifest.json: d_embed/d_llm are \(m.dEmbed)/\(m.dLLM), the config's model has \(config.model.dEmbed)/\(config.model.dLLM)")
        }
        return try config.data.variants.map { v in
            guard let i = m.variants.firstIndex(of: v) else {
                throw TrainingError("\(dataset.directory)/manifest.json: caption variant '\(v)' (data.variants) is not in the dataset (\(m.variants.joined(separator: ", ")))")
            }
            return i
        }
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
