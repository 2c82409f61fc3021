import Features
import Job
import JobConfig
import Model

/// Fills a step engine's inputs with its rows of a phase's global batch, from memory-mapped
/// shards. The batch of step k is fixed by (seed, phase, epoch, step) alone — positions
/// `[kB, (k+1)B)` of the epoch's permutation — and each worker reads only its own rows, so the
/// data a row sees never depends on the number of workers. Allocation-free per step.
public final class BatchFeeder {
    public let dataset: FeatureDataset
    public let phase: PlannedPhase
    private var sampler: GlobalBatchSampler
    private let seed: UInt64
    /// The engine's text variants (inherit) and the allowed draws (contrast), as manifest indices.
    private let readVariants: [Int]
    private let allowed: [Int]
    private var variantPerRow: [Int]

    /// `variantMap[i]` is the manifest index of the job's caption variant i.
    public init(dataset: FeatureDataset, phase: PlannedPhase, jobSeed: UInt64, variantMap: [Int], maxRows: Int) throws {
        self.dataset = dataset
        self.phase = phase
        seed = phase.seed(job: jobSeed)
        do {
            sampler = try GlobalBatchSampler(population: dataset.indices(of: .train), batchSize: phase.config.batch, seed: seed)
        } catch {
            throw TrainingError("phase '\(phase.config.name)': \(error)")
        }
        let loss = phase.config.loss
        readVariants = loss.textVariants.map { variantMap[$0] }
        allowed = loss.contrastVariants.map { variantMap[$0] }
        variantPerRow = [Int](repeating: 0, count: max(maxRows, 1))
    }

    /// Copies step `k` of the phase (its rows owned by `engine`) into the engine's inputs.
    public func fill(_ engine: StepEngine, step k: Int) {
        let position = phase.position(ofStep: k)
        let rows = sampler.slice(at: position, rank: engine.own.rank, worldSize: engine.own.world)
        switch phase.config.kind {
        case .inherit:
            dataset.read(rows: rows, variants: readVariants, llm: engine.llmInput.base,
                         clipText: engine.clipTextInput.base, image: nil)
        case .contrast:
            let n = rows.count
            variantPerRow.withUnsafeMutableBufferPointer { v in
                let out = UnsafeMutableBufferPointer(rebasing: v[0..<n])
                GlobalBatchSampler.variants(seed: seed, epoch: position.epoch, rows: rows, allowed: allowed, into: out)
            }
            dataset.read(rows: rows, variantPerRow: variantPerRow[0..<n], llm: engine.llmInput.base,
                         clipText: nil, image: engine.imageInput.base)
        }
    }
}
