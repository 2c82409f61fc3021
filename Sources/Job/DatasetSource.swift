import Basics
import Features
import JobConfig
import Tensors

/// Finds a job's dataset: the config's `data.path` (or an override), generating the synthetic
/// concept world (a simulation) there first when the directory is missing and the config
/// describes one. Every file's CRC-32 is checked against the manifest before training sees it.
public enum DatasetSource {
    /// Opens (and when needed generates) the dataset. `note` receives a line about what was done.
    public static func open(config: JobConfig, path override: String? = nil, note: (String) -> Void = { _ in }) throws -> FeatureDataset {
        let path = override ?? config.data.path
        if !Files.exists(path + "/manifest.json") {
            guard let spec = config.data.synthetic else {
                throw TrainingError("\(path): no dataset here (manifest.json missing); generate one with `proclip synth`, "
                                    + "extract one with Scripts/extract_features.py, or give data.synthetic in the config")
            }
            if Files.exists(path) {
                throw TrainingError("\(path) exists but holds no manifest.json; remove it or choose another data.path")
            }
            note("generating the synthetic concept world (a simulation) in \(path): \(spec.pairs) train + \(spec.evalPairs) eval pairs, seed \(spec.seed)")
            _ = try SynthGenerator.generate(spec, to: path)
        }
        return try FeatureDataset.open(path, verifyChecksums: true)
    }
}
