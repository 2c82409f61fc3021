import Control

extension CoordinatorServer {
    /// The status report, from the core's state and the step reports (answered at once).
    func status() -> StatusReport {
        let t = now()
        let step = core.step
        let p = min(core.phase(ofStep: step), plan.phases.count - 1)
        let phase = plan.phases[p]
        let last = core.lastReport
        let inPhase = max(0, step - phase.firstGlobalStep)
        var eta: Double?
        if let rate = smoothedRate, rate > 0, core.state == .running {
            var remaining = 0.0
            for q in plan.phases where q.firstGlobalStep + q.steps > step {
                let steps = min(q.firstGlobalStep + q.steps, core.totalSteps) - max(q.firstGlobalStep, step)
                if steps > 0 { remaining += Double(steps * q.config.batch) / rate }
            }
            eta = remaining
        }
        let workers = core.members.values.sorted { ($0.rank ?? Int.max, $0.id) < ($1.rank ?? Int.max, $1.id) }.map { m in
            StatusReport.Worker(id: m.id, rank: m.rank, host: m.hello.host, pid: m.hello.pid, state: m.state, step: m.step,
                                heartbeatAgeSeconds: max(0, t - m.lastHeartbeat), computeSeconds: m.computeSeconds,
                                commSeconds: m.commSeconds, allreduceGBs: m.allreduceGBs)
        }
        return StatusReport(
            job: options.config.name, state: core.state, configHash: options.config.hash,
            phase: StatusReport.Phase(index: p, count: plan.phases.count, name: phase.config.name, kind: phase.config.kind.rawValue,
                                      epoch: last?.epoch ?? phase.position(ofStep: min(inPhase, max(phase.steps - 1, 0))).epoch,
                                      step: min(inPhase, phase.steps), steps: phase.steps),
            step: step, totalSteps: core.totalSteps, elapsedSeconds: t, etaSeconds: eta, samplesPerSecond: smoothedRate,
            loss: last?.loss ?? [:], lossSmoothed: smoothed, lr: last?.lr ?? [:], logitScale: last.map { exp($0.logitScale) },
            worldSize: core.ring.count, generation: core.generation, lastCheckpoint: core.checkpoint?.path,
            lastCheckpointStep: core.checkpoint?.step, workers: workers, events: Array(events.suffix(20)),
            droppedMessages: channel.dropped, security: options.security.name)
    }
}

#if canImport(Glibc)
import Glibc
#endif
