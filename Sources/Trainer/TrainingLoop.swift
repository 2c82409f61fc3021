import Basics
import Features
import Job
import JobConfig
import Model
import Tensors

/// Runs one step of the global batch for the engines it holds and leaves the summed gradients in
/// `grads`: `LocalGroup` in one process, a ring of worker processes in a job.
public protocol StepExecutor: AnyObject {
    /// The engines this process feeds (one per simulated owner; one for a worker).
    var engines: [StepEngine] { get }
    /// The summed gradients of the last step.
    var grads: Slab { get }
    /// One forward/backward of the global batch; returns the loss terms of the whole batch.
    func run(store: ParameterStore) throws -> LossTerms
    /// Called before the step that will complete global step `step` (collectives tag their traffic with it).
    func beginStep(_ step: Int)
}

extension StepExecutor {
    public func beginStep(_ step: Int) {}
}

extension LocalGroup: StepExecutor {
    public func run(store: ParameterStore) throws -> LossTerms { step(store: store) }
}

/// What one optimizer step did.
public struct StepOutcome: Sendable {
    public let phase: PlannedPhase
    /// Step within the phase (0-based) and global steps completed after it.
    public let phaseStep: Int
    public let globalStep: Int
    public let terms: LossTerms
    public let lrFactor: Double
    public let gradNorm: Double
    public let seconds: Double
    public let logitScale: Double
    /// When the step ended (Unix seconds).
    public let time: Double

    /// The step as one metrics.jsonl line.
    public var json: String {
        let pc = phase.config
        let loss = terms.named(pc.kind).map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        let lr = pc.train.groups.map { "\"\($0.name)\":\((pc.optimizer.lr[$0] ?? 0) * lrFactor)" }.joined(separator: ",")
        let pos = phase.position(ofStep: phaseStep)
        return "{\"phase\":\"\(pc.name)\",\"phase_index\":\(phase.index),\"step\":\(globalStep),\"phase_step\":\(phaseStep + 1),"
            + "\"epoch\":\(pos.epoch),\"loss\":{\(loss)},\"lr\":{\(lr)},\"logit_scale\":\(logitScale),\"grad_norm\":\(gradNorm),"
            + "\"samples_per_second\":\(Double(pc.batch) / seconds),\"step_seconds\":\(seconds),\"time\":\(time)}"
    }
}

/// The curriculum, step by step, for any executor: phase changes at the configured global steps,
/// fresh optimizer state per phase (unless the config keeps it), the learning-rate schedule, the
/// clamp and the EMA update. The same code drives `proclip train` and every worker of a job, so
/// both follow one plan exactly.
public final class TrainingLoop {
    public let config: JobConfig
    public let dataset: FeatureDataset
    public let plan: CurriculumPlan
    public let store: ParameterStore
    let variantMap: [Int]
    let scratch: AdamWScratch
    /// Optimizer steps taken since the moments were last reset (AdamW's t).
    public private(set) var optimizerSteps = 0
    /// The current phase's executor and feeder, kept across `run` calls (a worker runs a phase
    /// lease by lease).
    private var current: (index: Int, exec: StepExecutor, feeder: BatchFeeder)?

    public init(config: JobConfig, dataset: FeatureDataset, store: ParameterStore) throws {
        self.config = config
        self.dataset = dataset
        self.store = store
        variantMap = try DataCheck.variantMap(config: config, dataset: dataset)
        plan = try CurriculumPlan(config: config, trainCount: dataset.indices(of: .train).count)
        scratch = AdamWScratch(layout: store.layout)
    }

    /// Sets the optimizer's step count (when resuming mid-phase).
    public func restoreOptimizerSteps(_ t: Int) { optimizerSteps = t }

    /// Runs global steps `start ..< end`. `executor(phase)` gives the executor of a phase (built
    /// once per phase, kept for later calls in the same phase); `onStep` sees every step; `onPhaseEnd(phase, step)` runs after the last
    /// step of each phase that ends inside the range; `shouldStop()` is asked before each step.
    public func run(
        from start: Int, to end: Int,
        executor: (PlannedPhase) throws -> StepExecutor,
        onStep: (StepOutcome) throws -> Void,
        onPhaseEnd: (PlannedPhase, Int) throws -> Void = { _, _ in },
        shouldStop: () -> Bool = { false }
    ) throws {
        var global = start
        let end = min(end, plan.totalSteps)
        while global < end {
            guard let (phase, first) = plan.locate(globalStep: global) else { break }
            let pc = phase.config
            if current?.index != phase.index {
                current = (phase.index, try executor(phase),
                           try BatchFeeder(dataset: dataset, phase: phase, jobSeed: config.seed, variantMap: variantMap, maxRows: pc.batch))
            }
            let exec = current!.exec, feeder = current!.feeder
            if first == 0 && pc.resetOptimizer {
                store.resetMoments()
                optimizerSteps = 0
            }
            var k = first
            while k < phase.steps && global < end {
                if shouldStop() { return }
                let t0 = MonotonicClock.now()
                for e in exec.engines { feeder.fill(e, step: k) }
                exec.beginStep(global + 1)
                let terms = try exec.run(store: store)
                guard terms.total.isFinite else {
                    let bad = terms.named(pc.kind).filter { !$0.1.isFinite }.map { "\($0.0) = \($0.1)" }.joined(separator: ", ")
                    throw TrainingError("phase '\(pc.name)' step \(k + 1) (global \(global + 1)): non-finite loss (\(bad)); stopping before the update")
                }
                optimizerSteps += 1
                let factor = phase.schedule.factor(at: k)
                let norm = AdamW.step(store: store, grads: exec.grads.base, groups: pc.train, settings: pc.optimizer,
                                      t: optimizerSteps, lrFactor: factor, emaAlpha: pc.emaAlpha, scratch: scratch)
                k += 1
                global += 1
                try onStep(StepOutcome(phase: phase, phaseStep: k - 1, globalStep: global, terms: terms, lrFactor: factor,
                                       gradNorm: norm, seconds: MonotonicClock.now() - t0,
                                       logitScale: Double(store.params.base[store.layout.logitScale]), time: wallClock()))
            }
            if k == phase.steps { try onPhaseEnd(phase, global) }
        }
    }
}

/// Seconds since the Unix epoch.
func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

#if canImport(Glibc)
import Glibc
#endif
