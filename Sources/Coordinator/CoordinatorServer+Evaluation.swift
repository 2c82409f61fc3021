import Control
import Foundation
import Job
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

extension CoordinatorServer {
    /// Starts the next evaluation whose parameters have arrived (one at a time).
    func startEvaluationIfReady() -> [CoordinatorCore.Directive] {
        guard !evaluating else { return [] }
        for step in pendingEvaluations.keys.sorted() {
            guard let bytes = uploads.complete[step], let job = pendingEvaluations[step] else { continue }
            pendingEvaluations[step] = nil
            evaluating = true
            let name = options.config.name
            let phaseName = plan.phases[job.phase].config.name
            let thread = Thread { [self] in
                var report: EvalReport
                do {
                    let store = ParameterStore(layout: ParameterLayout(options.config.model))
                    try store.load(from: SafeTensors(bytes: bytes, source: "parameters of step \(step)"))
                    report = evaluator.evaluate(store, model: "proclip \(name)", phase: phaseName + (job.final && step < plan.phases[job.phase].firstGlobalStep + plan.phases[job.phase].steps ? " (stopped)" : ""), step: step)
                    if job.final { try run.writeParameters(store, name: "final.safetensors", config: options.config, step: step) }
                } catch {
                    record("evaluation of step \(step) failed: \(error)")
                    report = EvalReport(model: "proclip \(name)", phase: phaseName + " (failed)", step: step, variants: [:],
                                        zeroshot_top1: nil, heldout_top1: nil, image_drift_cos: 0, samples: 0)
                }
                results.withLock { finishedEvaluations.append((report, job.phase, step, job.final)) }
            }
            thread.name = "proclip-eval"
            thread.start()
            return []
        }
        return []
    }

    /// Takes finished evaluations: eval.json, the log, and the core's next move.
    func collectEvaluations() -> [CoordinatorCore.Directive] {
        let done = results.withLock {
            let d = finishedEvaluations
            finishedEvaluations.removeAll()
            return d
        }
        var out: [CoordinatorCore.Directive] = []
        for (report, phase, step, final) in done {
            evaluating = false
            reports.append(report)
            try? run.writeEval(reports)
            record("after \(plan.phases[phase].config.name) (step \(step)): " + EvalTable.line(report))
            out += core.onEvaluated(phase: phase, step: step, final: final)
            out += startEvaluationIfReady()
        }
        return out
    }
}
