import Features
import JobConfig
import Model
import Tensors

/// One phase of the plan with its length resolved against the dataset.
public struct PlannedPhase: Sendable {
    /// Position in the plan (0-based).
    public let index: Int
    public let config: PhaseConfig
    /// Steps per epoch of this phase's batch size over the train split: ⌊N/B⌋ (the last partial
    /// batch of an epoch is dropped).
    public let stepsPerEpoch: Int
    /// Steps of the whole phase.
    public let steps: Int
    /// Global step (counted from the start of training) of this phase's first step.
    public let firstGlobalStep: Int
    public let schedule: LRSchedule

    /// Seed of this phase's sampler and caption-variant draws.
    public func seed(job: UInt64) -> UInt64 { SplitMix64.mix(job, UInt64(index)) }

    /// Epoch and step within the epoch of step `k` of the phase.
    public func position(ofStep k: Int) -> EpochPosition {
        EpochPosition(epoch: k / stepsPerEpoch, step: k % stepsPerEpoch)
    }
}

/// The curriculum resolved to steps: phase after phase, with global step numbers.
public struct CurriculumPlan: Sendable {
    public let phases: [PlannedPhase]
    public let totalSteps: Int

    /// Plans `config`'s phases over a train split of `trainCount` samples.
    public init(config: JobConfig, trainCount: Int) throws {
        var phases: [PlannedPhase] = []
        var first = 0
        for (i, p) in config.phases.enumerated() {
            let perEpoch = trainCount / p.batch
            guard perEpoch >= 1 else {
                throw TrainingError("phase '\(p.name)': batch \(p.batch) is larger than the train split (\(trainCount) samples)")
            }
            let steps: Int
            switch p.length {
            case .epochs(let e): steps = e * perEpoch
            case .steps(let s): steps = s
            }
            phases.append(PlannedPhase(index: i, config: p, stepsPerEpoch: perEpoch, steps: steps, firstGlobalStep: first,
                                       schedule: LRSchedule(warmup: p.warmup, total: steps)))
            first += steps
        }
        self.phases = phases
        totalSteps = first
    }

    /// The phase and step within it of global step `g` (nil past the end).
    public func locate(globalStep g: Int) -> (phase: PlannedPhase, step: Int)? {
        for p in phases where g < p.firstGlobalStep + p.steps { return (p, g - p.firstGlobalStep) }
        return nil
    }
}
