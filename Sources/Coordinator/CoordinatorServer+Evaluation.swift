import Basics
import Control
import Foundation
import Job
import JobConfig
import Model
import Tensors

/// Parameter uploads (rank 0 sends its parameters at every phase end and at the last step) and
/// their evaluation on a background thread, so the control loop keeps answering.
struct ParamsAssembler {
    private var header: ParamsHeader?
    private var buffer: [UInt8] = []
    private var received: Set<Int> = []
    /// Complete uploads by step (the newest few).
    private(set) var complete: [Int: [UInt8]] = [:]

    mutating func begin(_ h: ParamsHeader) {
        header = h
        buffer = [UInt8](repeating: 0, count: h.bytes)
        received = []
    }

    /// Adds a chunk; false when it does not belong to the upload in progress.
    mutating func add(chunk k: Int, step: Int, bytes: [UInt8]) -> Bool {
        guard let h = header, h.step == step, k >= 0, k < h.chunks, !received.contains(k) else { return false }
        let lo = k * ControlLimits.paramsChunk
        guard lo + bytes.count <= buffer.count, k == h.chunks - 1 ? lo + bytes.count == h.bytes : bytes.count == ControlLimits.paramsChunk else {
            return false
        }
        buffer.replaceSubrange(lo..<(lo + bytes.count), with: bytes)
        received.insert(k)
        if received.count == h.chunks {
            complete[step] = buffer
            if complete.count > 4, let oldest = complete.keys.min() { complete[oldest] = nil }
            header = nil
            buffer = []
        }
        return true
    }
}

/// One evaluation, with everything the evaluation thread needs; all of it Sendable, so the
/// thread shares nothing with the control loop but the hand-off.
struct EvaluationJob: Sendable {
    let phase: Int
    let step: Int
    let final: Bool
    /// The uploaded safetensors file.
    let bytes: [UInt8]
    let model: String
    let phaseLabel: String
    let config: JobConfig
    /// Sendable: immutable, and `evaluate` only reads it (see `Evaluator`). The control loop uses
    /// it only before the first evaluation starts (the baseline).
    let evaluator: Evaluator
    /// Where the final parameters go (final evaluations only).
    let finalPath: String?

    /// Evaluates the parameters and, for the final step, writes them to `finalPath`.
    func run() -> EvaluationOutcome {
        let store = ParameterStore(layout: ParameterLayout(config.model))
        do {
            try store.load(from: SafeTensors(bytes: bytes, source: "parameters of step \(step)"))
        } catch {
            let failed = EvalReport(model: model, phase: phaseLabel + " (failed)", step: step, variants: [:],
                                    zeroshot_top1: nil, heldout_top1: nil, image_drift_cos: 0, samples: 0)
            return EvaluationOutcome(job: self, report: failed, error: "\(error)", parametersError: nil)
        }
        let report = evaluator.evaluate(store, model: model, phase: phaseLabel, step: step)
        var parametersError: String?
        if let finalPath {
            do {
                try RunDirectory.writeParameters(store, to: finalPath, config: config, step: step)
            } catch {
                parametersError = "\(finalPath): not written: \(error)"
            }
        }
        return EvaluationOutcome(job: self, report: report, error: nil, parametersError: parametersError)
    }
}

/// What the evaluation thread hands back: the report (a "(failed)" one when the parameters did
/// not load, with the error), and for a final evaluation why final.safetensors was not written
/// (nil: written, or not asked for).
struct EvaluationOutcome: Sendable {
    let phase: Int
    let step: Int
    let final: Bool
    let report: EvalReport
    let error: String?
    let parametersError: String?

    init(job: EvaluationJob, report: EvalReport, error: String?, parametersError: String?) {
        phase = job.phase
        step = job.step
        final = job.final
        self.report = report
        self.error = error
        self.parametersError = parametersError
    }
}

/// The one place the evaluation thread and the control loop meet: finished evaluations, under a
/// lock. The thread only puts; the control loop takes, and does all logging, eval.json writes
/// and core calls itself.
final class EvaluationHandoff: Sendable {
    private let finished = Locked<[EvaluationOutcome]>([])

    func put(_ outcome: EvaluationOutcome) { finished.withLock { $0.append(outcome) } }

    func take() -> [EvaluationOutcome] {
        finished.withLock { done in
            defer { done.removeAll() }
            return done
        }
    }
}

extension CoordinatorServer {
    /// Starts the next evaluation whose parameters have arrived (one at a time) on a thread of
    /// its own; its outcome comes back through `handoff`.
    func startEvaluationIfReady() -> [CoordinatorCore.Directive] {
        guard !evaluating else { return [] }
        for step in pendingEvaluations.keys.sorted() {
            guard let bytes = uploads.complete[step], let pending = pendingEvaluations[step] else { continue }
            pendingEvaluations[step] = nil
            evaluating = true
            let phase = plan.phases[pending.phase]
            let stopped = pending.final && step < phase.firstGlobalStep + phase.steps
            let job = EvaluationJob(phase: pending.phase, step: step, final: pending.final, bytes: bytes,
                                    model: "proclip \(options.config.name)", phaseLabel: phase.config.name + (stopped ? " (stopped)" : ""),
                                    config: options.config, evaluator: evaluator,
                                    finalPath: pending.final ? run.path + "/final.safetensors" : nil)
            let handoff = self.handoff
            let thread = Thread { handoff.put(job.run()) }
            thread.name = "proclip-eval"
            thread.start()
            return []
        }
        return []
    }

    /// Takes finished evaluations: the log, eval.json, and the core's next move.
    func collectEvaluations() -> [CoordinatorCore.Directive] {
        var out: [CoordinatorCore.Directive] = []
        for done in handoff.take() {
            evaluating = false
            if let error = done.error { record("evaluation of step \(done.step) failed: \(error)") }
            reports.append(done.report)
            saveEval()
            record("after \(plan.phases[done.phase].config.name) (step \(done.step)): " + EvalTable.line(done.report))
            if let e = done.parametersError {
                out += core.onFatal("final parameters: \(e)")
                continue
            }
            out += core.onEvaluated(phase: done.phase, step: done.step, final: done.final)
            out += startEvaluationIfReady()
        }
        return out
    }

    /// Rewrites eval.json; a failure is recorded as an event naming the file.
    func saveEval() {
        do {
            try run.writeEval(reports)
        } catch {
            record("\(run.path)/eval.json: not written: \(error)")
        }
    }
}
