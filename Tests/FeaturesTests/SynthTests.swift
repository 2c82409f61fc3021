import XCTest
@testable import Features
import Tensors
import TestSupport

/// The synthetic world (a simulation): deterministic, and its documented mechanisms hold.
final class SynthTests: XCTestCase {
    static func smallSpec(seed: UInt64 = 11) -> SynthWorldSpec {
        var s = SynthWorldSpec()
        s.seed = seed
        s.pairs = 300
        s.evalPairs = 200
        s.shardRows = 128
        return s
    }

    func testSameSeedGivesByteIdenticalShards() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        var spec = SynthTests.smallSpec()
        spec.pairs = 100
        spec.evalPairs = 30
        spec.dtype = .float16
        try SynthGenerator.generate(spec, to: dir.sub("a"))
        try SynthGenerator.generate(spec, to: dir.sub("b"))
        spec.seed += 1
        try SynthGenerator.generate(spec, to: dir.sub("c"))
        let a = try treeContents(dir.sub("a")), b = try treeContents(dir.sub("b")), c = try treeContents(dir.sub("c"))
        XCTAssertEqual(a.keys.sorted(), ["eval-00000/captions.jsonl", "eval-00000/clip_text.npy", "eval-00000/concepts.npy",
                                         "eval-00000/image.npy", "eval-00000/llm.npy", "manifest.json",
                                         "prompts/clip_text.npy", "prompts/llm.npy",
                                         "train-00000/captions.jsonl", "train-00000/clip_text.npy", "train-00000/concepts.npy",
                                         "train-00000/image.npy", "train-00000/llm.npy"])
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a["train-00000/llm.npy"], c["train-00000/llm.npy"])
        XCTAssertEqual(DatasetVerifier.verify(dir.sub("a")).problems, [])
    }

    func testManifestLabelsTheSimulationAndRecordsTheWorld() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        var spec = SynthTests.smallSpec(seed: 0xFEDC_BA98_7654_3210)  // above Int64.max: must survive JSON
        spec.pairs = 40
        spec.evalPairs = 10
        let m = try SynthGenerator.generate(spec, to: dir.sub("w"))
        XCTAssertTrue(m.description.contains("a simulation, not real data"))
        XCTAssertEqual(m.source?["kind"], .string("simulation"))
        XCTAssertEqual(try m.source?["world"]?.decode(SynthWorldSpec.self), spec)
        XCTAssertEqual(try Manifest.read(dir.sub("w") + "/manifest.json").source?["world"]?.decode(SynthWorldSpec.self), spec)
        XCTAssertEqual(m.variants, ["short_en", "long_en", "noisy_en", "long_de", "long_zh"])
        XCTAssertEqual(m.prompts?.labels.count, spec.concepts)
        XCTAssertEqual(m.prompts?.heldOut, Array(56..<64))
        let ds = try FeatureDataset.open(dir.sub("w"))
        XCTAssertEqual(ds.prompts?.clipText.count, spec.concepts * spec.dEmbed)
        XCTAssertEqual(ds.indices(of: .train).count, 40)
        XCTAssertEqual(ds.indices(of: .eval), Array(40..<50))
    }

    func testHeldOutConceptsAreInTrainingImagesButNeverInTrainingCaptions() throws {
        let spec = SynthTests.smallSpec()
        let world = SynthWorld(spec)
        let firstHeldOut = spec.concepts - spec.heldOutConcepts
        var heldOutInImages = 0, heldOutNamedInEval = 0
        for g in 0..<(spec.pairs + spec.evalPairs) {
            var rng = SplitMix64(seed: SplitMix64.mix(SplitMix64.mix(spec.seed, SynthGenerator.sampleSalt), UInt64(g)))
            let sample = SynthGenerator.sample(world, g, &rng)
            let named = sample.captions.flatMap { $0 }.compactMap(world.lexicon.concept(of:))
            // Captions name concepts of the image (noisy_en may substitute a word of another concept).
            let faithful = [0, 1, 3, 4].flatMap { sample.captions[$0] }.compactMap(world.lexicon.concept(of:))
            XCTAssertTrue(Set(faithful).isSubset(of: Set(sample.concepts)))
            if g < spec.pairs {
                XCTAssertFalse(named.contains { $0 >= firstHeldOut }, "training sample \(g) names a held-out concept")
                heldOutInImages += sample.concepts.filter { $0 >= firstHeldOut }.count
            } else {
                heldOutNamedInEval += named.filter { $0 >= firstHeldOut }.count
            }
        }
        XCTAssertGreaterThan(heldOutInImages, 50)
        XCTAssertGreaterThan(heldOutNamedInEval, 10)
    }

    /// CLIP text reads only the first tokens: a long caption's embedding matches its image less
    /// than a short caption matches an image of just the short caption's concepts, and changing the
    /// tail of a long caption barely moves CLIP text but moves the LLM embedding.
    func testClipTextTruncatesAndTheLLMSeesTheTail() {
        let spec = SynthTests.smallSpec()
        let world = SynthWorld(spec)
        let lex = world.lexicon
        var rng = SplitMix64(seed: 99)
        let de = spec.dEmbed, dl = spec.dLLM
        var img = [Float](repeating: 0, count: de), txt = [Float](repeating: 0, count: de)
        var a = [Float](repeating: 0, count: dl), b = [Float](repeating: 0, count: dl)
        var clipTail = [Float](repeating: 0, count: de), clipHead = [Float](repeating: 0, count: de)
        var longVsImage = 0.0, shortVsItsImage = 0.0, clipTailShift = 0.0, llmTailShift = 0.0
        let trials = 200
        for _ in 0..<trials {
            var concepts: [Int] = []
            while concepts.count < 6 { let c = rng.below(56); if !concepts.contains(c) { concepts.append(c) } }
            let longTokens = lex.caption(concepts, .en), shortTokens = lex.caption(Array(concepts.prefix(2)), .en)
            world.image(concepts, &rng, &img)
            world.clipText(longTokens, &rng, &txt)
            longVsImage += cosine(img, txt, de)
            world.image(Array(concepts.prefix(2)), &rng, &img)
            world.clipText(shortTokens, &rng, &txt)
            shortVsItsImage += cosine(img, txt, de)
            // Same caption with its last concept replaced.
            var other = concepts
            other[5] = (0..<56).first { !concepts.contains($0) }!
            let otherTokens = lex.caption(other, .en)
            world.clipText(longTokens, &rng, &clipHead); world.clipText(otherTokens, &rng, &clipTail)
            clipTailShift += 1 - cosine(clipHead, clipTail, de)
            world.llm(longTokens, &rng, &a); world.llm(otherTokens, &rng, &b)
            llmTailShift += 1 - cosine(a, b, dl)
        }
        longVsImage /= Double(trials); shortVsItsImage /= Double(trials)
        clipTailShift /= Double(trials); llmTailShift /= Double(trials)
        XCTAssertLessThan(longVsImage, shortVsItsImage - 0.1, "long \(longVsImage) vs short \(shortVsItsImage)")
        XCTAssertGreaterThan(llmTailShift, 2 * clipTailShift, "LLM shift \(llmTailShift), CLIP shift \(clipTailShift)")
    }

    /// Read from the written shards: CLIP text of non-English captions retrieves images near chance,
    /// English far above it; LLM embeddings of translations are much closer than unrelated captions.
    func testLanguagesInBothSpaces() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let spec = SynthTests.smallSpec()
        try SynthGenerator.generate(spec, to: dir.sub("w"))
        let ds = try FeatureDataset.open(dir.sub("w"))
        let rows = ds.indices(of: .eval), n = rows.count, de = ds.dEmbed, dl = ds.dLLM
        var image = [Float](repeating: 0, count: n * de)
        var clip = [Float](repeating: 0, count: 5 * n * de), llm = [Float](repeating: 0, count: 5 * n * dl)
        ds.read(rows: rows[...], variants: [0, 1, 2, 3, 4], llm: &llm, clipText: &clip, image: &image)
        func recallAt1(_ variant: Int) -> Double {
            var hits = 0
            clip.withUnsafeBufferPointer { c in
                image.withUnsafeBufferPointer { im in
                    for i in 0..<n {
                        var best = -1.0, arg = -1
                        for t in 0..<n {
                            let s = cosine(im.baseAddress! + i * de, c.baseAddress! + (variant * n + t) * de, de)
                            if s > best { best = s; arg = t }
                        }
                        if arg == i { hits += 1 }
                    }
                }
            }
            return Double(hits) / Double(n)
        }
        let english = recallAt1(1), german = recallAt1(3), chinese = recallAt1(4)
        XCTAssertGreaterThan(english, 0.4, "long_en i2t R@1")
        XCTAssertLessThan(english, 0.95, "the world should not saturate")
        XCTAssertLessThan(chinese, 0.03, "long_zh: CLIP should read no Chinese-like words")
        XCTAssertLessThan(german, english / 3, "long_de: only cognates")
        var translation = 0.0, unrelated = 0.0
        llm.withUnsafeBufferPointer { l in
            let p = l.baseAddress!
            for i in 0..<n {
                let en = p + (1 * n + i) * dl
                translation += (cosine(en, p + (3 * n + i) * dl, dl) + cosine(en, p + (4 * n + i) * dl, dl)) / 2
                unrelated += cosine(en, p + (1 * n + (i + 1) % n) * dl, dl)
            }
        }
        translation /= Double(n); unrelated /= Double(n)
        XCTAssertGreaterThan(translation, 0.6)
        XCTAssertGreaterThan(translation, unrelated + 0.4, "translations \(translation), unrelated \(unrelated)")
        XCTAssertLessThan(translation, 0.98, "translations should not coincide")
    }
}
