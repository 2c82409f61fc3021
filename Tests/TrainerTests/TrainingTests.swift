import Features
import Foundation
import Job
import JobConfig
import Model
import Tensors
import Trainer
import XCTest

/// The curriculum on a small synthetic world (a simulation): what its mechanisms must produce,
/// determinism, and that splitting steps among owners changes nothing.
final class TrainingTests: XCTestCase {
    static let world: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-trainer-world-\(getpid())").path
        var spec = SynthWorldSpec()
        spec.seed = 3
        spec.pairs = 4096
        spec.evalPairs = 512
        _ = try! SynthGenerator.generate(spec, to: dir)
        return dir
    }()

    func config(name: String, lambda: Double = 4e-3, inherit: Bool = true, contrastEpochs: Int = 8) throws -> JobConfig {
        var text = """
            name: \(name)
            seed: 7
            model: {d_llm: 64, d_embed: 32, text_blocks: 1, text_expansion: 4, image_blocks: 1, image_expansion: 2}
            data: {path: \(TrainingTests.world), variants: [short_en, long_en, noisy_en, long_de, long_zh]}
            phases:

            """
        if inherit {
            text += """
                  - {name: inherit, kind: inherit, epochs: 8, batch: 256, group: 64, lr: 2.0e-3, warmup: 20,
                     losses: {ins: {variants: [short_en, noisy_en]}, str: {variants: [short_en]}}}

                """
        }
        text += """
              - {name: contrast, kind: contrast, epochs: \(contrastEpochs), batch: 512, group: 128, lr: 1.0e-3, warmup: 20,
                 lambda: \(lambda), variants: [short_en, long_en, long_de, long_zh]}
            """
        return try JobConfig.parse(text, source: name)
    }

    func train(_ job: JobConfig, maxSteps: Int? = nil, workers: Int = 1) throws -> (LocalTrainer, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-run-\(job.name)-\(workers)-\(getpid())").path
        let run = try RunDirectory(path: dir, overwrite: true)
        var options = TrainOptions()
        options.maxSteps = maxSteps
        options.progress = false
        options.simulatedWorkers = workers
        let trainer = try LocalTrainer(config: job, dataset: try FeatureDataset.open(TrainingTests.world), run: run, options: options)
        try trainer.train()
        return (trainer, dir)
    }

    /// After inherit the adaptor is within a few points of the CLIP-text baseline on short
    /// captions; after contrast, long-caption and non-English retrieval beat the baseline clearly;
    /// self-distillation keeps the image embeddings closer to the original than no-self-distill.
    func testCurriculumMechanisms() throws {
        let (proclip, _) = try train(config(name: "mechanisms"))
        let (noSD, _) = try train(config(name: "mechanisms-nosd", lambda: 0))
        let base = proclip.reports[0], inherit = proclip.reports[1], contrast = proclip.reports[2]
        func r1(_ r: EvalReport, _ v: String) -> Double { r.variants[v]!.i2t_r1 }
        XCTAssertEqual(r1(inherit, "short_en"), r1(base, "short_en"), accuracy: 0.05, "inherit keeps CLIP's short-caption behaviour")
        XCTAssertGreaterThan(r1(contrast, "long_en"), r1(base, "long_en") + 0.1, "long captions beat CLIP's truncated text")
        for v in ["long_de", "long_zh"] {
            XCTAssertGreaterThan(r1(contrast, v), r1(base, v) + 0.3, "\(v) beats CLIP's English-only text")
        }
        XCTAssertEqual(base.image_drift_cos, 1, accuracy: 1e-6)
        XCTAssertEqual(inherit.image_drift_cos, 1, accuracy: 1e-6, "the image head is frozen while inheriting")
        let withSD = contrast.image_drift_cos, without = noSD.reports[2].image_drift_cos
        XCTAssertGreaterThan(withSD, without + 0.01, "self-distillation holds the image embeddings near the original (\(withSD) vs \(without))")
        for r in proclip.reports {
            for s in r.variants.values { XCTAssertLessThan(s.i2t_r1, 0.99, "nothing saturates") }
        }
    }

    /// Same config and seed twice: bit-identical parameters and losses.
    func testSameSeedIsBitIdentical() throws {
        let job = try config(name: "determinism", contrastEpochs: 1)
        let (_, a) = try train(job, maxSteps: 40)
        let (_, b) = try train(try config(name: "determinism2", contrastEpochs: 1), maxSteps: 40)
        let pa = try SafeTensors(path: a + "/final.safetensors"), pb = try SafeTensors(path: b + "/final.safetensors")
        for name in pa.tensors.keys {
            XCTAssertEqual(try pa.rawBytes(name), try pb.rawBytes(name), name)
        }
        func losses(_ dir: String) throws -> [Substring] {
            try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .map { $0[$0.range(of: "\"loss\"")!.lowerBound..<$0.range(of: "\"lr\"")!.lowerBound] }
        }
        XCTAssertEqual(try losses(a), try losses(b))
        XCTAssertEqual(try losses(a).count, 40)
    }

    /// Steps split among 1, 2 and 3 owners give the same parameters after 20 steps of each phase
    /// (up to float summation order).
    func testSplitAmongOwnersGivesSameParameters() throws {
        for inherit in [true, false] {
            let job = try config(name: "split-\(inherit)", inherit: inherit, contrastEpochs: 1)
            let (one, _) = try train(job, maxSteps: 20, workers: 1)
            for k in [2, 3] {
                let (many, _) = try train(job, maxSteps: 20, workers: k)
                let a = one.store.params.toArray(), b = many.store.params.toArray()
                var num = 0.0, den = 0.0
                for i in a.indices { num += Double(a[i] - b[i]) * Double(a[i] - b[i]); den += Double(a[i]) * Double(a[i]) }
                XCTAssertLessThanOrEqual((num / den).squareRoot(), 1e-5, "\(inherit ? "inherit" : "contrast") K=\(k)")
            }
        }
    }

    func testRefusesMismatchedData() throws {
        let text = """
            name: bad
            model: {d_llm: 48, d_embed: 32}
            data: {path: \(TrainingTests.world), variants: [short_en]}
            phases: [{name: inherit, steps: 1, batch: 8, lr: 1.0e-3}]
            """
        let job = try JobConfig.parse(text, source: "bad")
        XCTAssertThrowsError(try DataCheck.variantMap(config: job, dataset: FeatureDataset.open(TrainingTests.world))) {
            XCTAssertTrue("\($0)".contains("manifest.json: d_embed/d_llm are 32/64"), "\($0)")
        }
        let job2 = try JobConfig.parse(text.replacingOccurrences(of: "d_llm: 48", with: "d_llm: 64")
                                           .replacingOccurrences(of: "[short_en]", with: "[short_fr]"), source: "bad2")
        XCTAssertThrowsError(try DataCheck.variantMap(config: job2, dataset: FeatureDataset.open(TrainingTests.world))) {
            XCTAssertTrue("\($0)".contains("'short_fr'"), "\($0)")
        }
    }

    /// The trainer's open (and the coordinator's, which shares it) checks the manifest's CRC-32s:
    /// a generated world opens; with one byte of a shard flipped it is refused, naming the file.
    func testDatasetSourceRefusesADamagedShard() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proclip-damaged-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = try JobConfig.parse("""
            name: damaged
            model: {d_llm: 64, d_embed: 32}
            data: {path: \(dir), variants: [short_en], synthetic: {seed: 5, pairs: 256, eval_pairs: 64}}
            phases: [{name: inherit, steps: 1, batch: 8, lr: 1.0e-3}]
            """, source: "damaged")
        XCTAssertEqual(try DatasetSource.open(config: job).count, 320)
        let path = dir + "/train-00000/clip_text.npy"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try DatasetSource.open(config: job)) {
            XCTAssertTrue("\($0)".hasPrefix(path + ": crc32 does not match manifest.json: found "), "\($0)")
        }
    }
}
