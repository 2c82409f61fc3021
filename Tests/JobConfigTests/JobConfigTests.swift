import Foundation
import JobConfig
import Model
import XCTest

final class JobConfigTests: XCTestCase {
    let good = """
        name: t
        seed: 3
        model: {d_llm: 16, d_embed: 8, text_blocks: 2, text_expansion: 4, image_blocks: 1, image_expansion: 2}
        data:
          path: data/t
          variants: [short_en, long_en, noisy_en, long_de]
        phases:
          - name: inherit
            epochs: 2
            batch: 64
            group: 16
            lr: 1.0e-3
            warmup: 5
            losses:
              ins: {weight: 1.0, variants: [short_en, noisy_en]}
              str: {weight: 0.5, variants: [short_en]}
          - name: contrast
            steps: 30
            batch: 128
            lr: {text: 1.0e-4, image: 2.0e-4, scale: 1.0e-3}
            lambda: 4.0e-4
            ema_alpha: 0.99
            variants: [short_en, long_en, long_de]
        """

    func parse(_ text: String) throws -> JobConfig { try JobConfig.parse(text, source: "test.yaml") }

    func expectError(_ text: String, key: String, contains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: line) { error in
            guard let e = error as? ConfigError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.key, key, "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(contains), "\(e)", file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), "one line", file: file, line: line)
        }
    }

    func testReadsEverything() throws {
        let c = try parse(good)
        XCTAssertEqual(c.model, ModelShape(dLLM: 16, dEmbed: 8, textBlocks: 2, textExpansion: 4, imageBlocks: 1, imageExpansion: 2))
        XCTAssertEqual(c.seed, 3)
        XCTAssertEqual(c.phases.count, 2)
        let inherit = c.phases[0], contrast = c.phases[1]
        XCTAssertEqual(inherit.kind, .inherit)
        XCTAssertEqual(inherit.length, .epochs(2))
        XCTAssertEqual(inherit.loss.insVariants, [0, 2])
        XCTAssertEqual(inherit.loss.strVariants, [0])
        XCTAssertEqual(inherit.loss.wStr, 0.5)
        XCTAssertEqual(inherit.loss.group, 16)
        XCTAssertEqual(inherit.train, .text)
        XCTAssertEqual(inherit.optimizer.beta2, 0.98)
        XCTAssertEqual(inherit.optimizer.weightDecay, 0.05)
        XCTAssertEqual(contrast.kind, .contrast)
        XCTAssertEqual(contrast.length, .steps(30))
        XCTAssertEqual(contrast.loss.group, 128, "G defaults to the whole batch")
        XCTAssertEqual(contrast.loss.contrastVariants, [0, 1, 3])
        XCTAssertEqual(contrast.train, .all)
        XCTAssertEqual(contrast.optimizer.lr[.image], 2e-4)
        XCTAssertEqual(contrast.emaAlpha, 0.99)
        XCTAssertEqual(try c.phase(named: "contrast").name, "contrast")
        XCTAssertThrowsError(try c.phase(named: "nope"))
    }

    func testHashIgnoresFormattingButNotValues() throws {
        let a = try parse(good)
        let b = try parse("# a comment\n" + good.replacingOccurrences(of: "seed: 3", with: "seed:   3   # same"))
        let c = try parse(good.replacingOccurrences(of: "lambda: 4.0e-4", with: "lambda: 5.0e-4"))
        XCTAssertEqual(a.hash, b.hash)
        XCTAssertNotEqual(a.hash, c.hash)
        XCTAssertEqual(a.hash.count, 16)
    }

    func testErrorsNameTheKey() {
        expectError(good.replacingOccurrences(of: "seed: 3", with: "seed: 3\nsede: 4"), key: "sede", contains: "unknown key")
        expectError(good.replacingOccurrences(of: "d_embed: 8", with: "d_embed: eight"), key: "model.d_embed", contains: "integer")
        expectError(good.replacingOccurrences(of: "d_embed: 8", with: "d_embed: 0"), key: "model.d_embed", contains: "at least 1")
        expectError(good.replacingOccurrences(of: "warmup: 5", with: "warmup: 5\n    warmpu: 5"),
                    key: "phases[0].warmpu", contains: "unknown key")
        expectError(good.replacingOccurrences(of: "variants: [short_en, long_en, long_de]", with: "variants: [short_en, long_fr]"),
                    key: "phases[1].variants", contains: "long_fr")
        expectError(good.replacingOccurrences(of: "image: 2.0e-4, ", with: ""), key: "phases[1].lr", contains: "image")
        expectError(good.replacingOccurrences(of: "    epochs: 2\n", with: ""), key: "phases[0]", contains: "epochs or steps")
        expectError(good.replacingOccurrences(of: "steps: 30", with: "steps: 30\n    epochs: 1"), key: "phases[1]", contains: "not both")
        expectError(good.replacingOccurrences(of: "ema_alpha: 0.99", with: "ema_alpha: 1.5"), key: "phases[1].ema_alpha", contains: "[0, 1]")
        expectError(good.replacingOccurrences(of: "name: contrast", with: "name: inherit\n    kind: contrast"),
                    key: "phases[1].name", contains: "twice")
        expectError(good.replacingOccurrences(of: "  - name: inherit\n", with: "  - name: inherit\n    train: [text, image]\n"),
                    key: "phases[0].train", contains: "only the text adaptor")
        expectError("name: [", key: "", contains: "YAML")
    }

    /// `good` with `old` replaced by `new` in the contrast phase (the second), so the error names it.
    func contrast(_ old: String, _ new: String) -> String {
        let at = good.range(of: "  - name: contrast")!
        let tail = String(good[at.lowerBound...])
        XCTAssertTrue(tail.contains(old), old)
        return String(good[..<at.lowerBound]) + tail.replacingOccurrences(of: old, with: new)
    }

    /// A bad value's error names the file, the key, the phase, and what is allowed.
    func expectRefused(_ old: String, _ new: String, key: String, allowed: String, file: StaticString = #filePath, line: UInt = #line) {
        expectError(contrast(old, new), key: key, contains: "test.yaml: \(key) (phase 'contrast'): \(allowed)", file: file, line: line)
    }

    func testNegativeLearningRateIsRefusedForEveryGroup() {
        for g in ["text", "image", "scale"] {
            let bad = contrast("lr: {text: 1.0e-4, image: 2.0e-4, scale: 1.0e-3}",
                               "lr: {text: 1.0e-4, image: 2.0e-4, scale: 1.0e-3}".replacingOccurrences(of: "\(g): ", with: "\(g): -"))
            expectError(bad, key: "phases[1].lr.\(g)", contains: "(phase 'contrast'): must be 0 or more, got -")
        }
        expectRefused("lr: {text: 1.0e-4, image: 2.0e-4, scale: 1.0e-3}", "lr: -1.0e-4", key: "phases[1].lr", allowed: "must be 0 or more, got -1.0e-4")
        XCTAssertNoThrow(try parse(contrast("lr: {text: 1.0e-4, image: 2.0e-4, scale: 1.0e-3}", "lr: 0")), "lr 0 freezes a group")
    }

    func testNegativeWeightDecayIsRefused() {
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    weight_decay: -0.01", key: "phases[1].weight_decay",
                      allowed: "must be 0 or more, got -0.01")
        XCTAssertNoThrow(try parse(contrast("lambda: 4.0e-4", "lambda: 4.0e-4\n    weight_decay: 0")))
    }

    func testEpsMustBePositive() {
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    eps: 0", key: "phases[1].eps", allowed: "must be greater than 0, got 0")
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    eps: -1.0e-8", key: "phases[1].eps", allowed: "must be greater than 0, got -1.0e-8")
    }

    func testEachBetaMustBeInZeroToOne() {
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    betas: [1.0, 0.98]", key: "phases[1].betas[0]", allowed: "must be in [0, 1), got 1.0")
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    betas: [0.9, -0.1]", key: "phases[1].betas[1]", allowed: "must be in [0, 1), got -0.1")
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    betas: [0.9]", key: "phases[1].betas", allowed: "expected two numbers [beta1, beta2]")
        let ok = try? parse(contrast("lambda: 4.0e-4", "lambda: 4.0e-4\n    betas: [0, 0.5]"))
        XCTAssertEqual(ok?.phases[1].optimizer.beta1, 0)
        XCTAssertEqual(ok?.phases[1].optimizer.beta2, 0.5)
    }

    func testEmaAlphaMustBeInZeroToOne() {
        expectRefused("ema_alpha: 0.99", "ema_alpha: 1.5", key: "phases[1].ema_alpha", allowed: "must be in [0, 1], got 1.5")
        expectRefused("ema_alpha: 0.99", "ema_alpha: -0.5", key: "phases[1].ema_alpha", allowed: "must be in [0, 1], got -0.5")
        XCTAssertEqual(try? parse(contrast("ema_alpha: 0.99", "ema_alpha: 1")).phases[1].emaAlpha, 1)
    }

    func testClipGradNormMustBePositiveWhenGiven() {
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    clip_grad_norm: 0", key: "phases[1].clip_grad_norm", allowed: "must be greater than 0, got 0")
        XCTAssertEqual(try? parse(contrast("lambda: 4.0e-4", "lambda: 4.0e-4\n    clip_grad_norm: 1.0")).phases[1].optimizer.clipNorm, 1)
        XCTAssertNil(try? parse(good).phases[1].optimizer.clipNorm ?? nil)
    }

    func testNegativeWarmupIsRefused() {
        expectRefused("lambda: 4.0e-4", "lambda: 4.0e-4\n    warmup: -1", key: "phases[1].warmup", allowed: "must be at least 0, got -1")
    }

    func testBatchAndGroupSize() {
        expectRefused("batch: 128", "batch: 0", key: "phases[1].batch", allowed: "must be at least 1, got 0")
        expectRefused("batch: 128", "batch: 128\n    group: 0", key: "phases[1].group", allowed: "must be at least 1, got 0")
        expectRefused("batch: 128", "batch: 128\n    group: 129", key: "phases[1].group", allowed: "must be in 1...batch (1...128), got 129")
        XCTAssertEqual(try? parse(contrast("batch: 128", "batch: 128\n    group: 128")).phases[1].loss.group, 128)
    }

    func testNonFiniteNumbersAreRefused() {
        for text in ["nan", ".nan", ".NaN", "inf", ".inf", "-.inf", "1e999"] {
            expectRefused("lambda: 4.0e-4", "lambda: \(text)", key: "phases[1].lambda", allowed: "expected a finite number, got \"\(text)\"")
        }
        expectRefused("lr: {text: 1.0e-4, image: 2.0e-4, scale: 1.0e-3}", "lr: {text: .nan, image: 2.0e-4, scale: 1.0e-3}",
                      key: "phases[1].lr.text", allowed: "expected a finite number")
    }

    func testNegativeLossWeightsAndLambdaAreRefused() {
        expectRefused("lambda: 4.0e-4", "lambda: -4.0e-4", key: "phases[1].lambda", allowed: "must be 0 or more, got -4.0e-4")
        expectError(good.replacingOccurrences(of: "str: {weight: 0.5", with: "str: {weight: -0.5"),
                    key: "phases[0].losses.str.weight", contains: "test.yaml: phases[0].losses.str.weight (phase 'inherit'): must be 0 or more")
    }
}

/// Every shipped config parses.
final class ShippedConfigTests: XCTestCase {
    func testShippedConfigsParse() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let dir = url.appendingPathComponent("Configs").path
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        XCTAssertTrue(Set(names).isSuperset(of: ["demo.yaml", "proclip-l14-llama3-8b.yaml", "inherit-only.yaml", "llm2clip.yaml", "no-self-distill.yaml"]))
        for n in names {
            XCTAssertNoThrow(try JobConfig.load(path: dir + "/" + n), n)
        }
        let paper = try JobConfig.load(path: dir + "/proclip-l14-llama3-8b.yaml")
        XCTAssertEqual(paper.model.dLLM, 4096)
        XCTAssertEqual(paper.phases.map(\.batch), [1024, 4096])
        XCTAssertEqual(paper.phases[1].loss.lambda, 4e-4)
    }
}
