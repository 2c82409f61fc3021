import Features
import JobConfig

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
