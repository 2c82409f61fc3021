import Tensors

/// One sample of the synthetic world: the concepts its image shows (ordered; captions list them in
/// this order) and the token sequence of each caption variant.
struct SynthSample {
    var concepts: [Int]
    /// Tokens per variant, in `SynthWorldSpec.variants` order.
    var captions: [[Int]]
    /// Caption languages, in the same order.
    static let languages: [SynthLanguage] = [.en, .en, .en, .de, .zh]
}

/// `proclip synth`: writes the synthetic concept world (a simulation) as a feature dataset:
/// `train-NNNNN` shards of `pairs` rows, `eval-NNNNN` shards of `evalPairs` rows, each with
/// `image.npy`, `clip_text.npy`, `llm.npy`, `concepts.npy` and `captions.jsonl`, plus `prompts/`
/// (one English prompt "a photo of NAME" per concept). Same spec → byte-identical files.
public enum SynthGenerator {
    static let sampleSalt: UInt64 = 0x5341_4D50_4C45  // "SAMPLE"
    static let promptSalt: UInt64 = 0x5052_4F4D_5054  // "PROMPT"

    /// Generates the world described by `spec` into `directory` (which must not exist). Nothing
    /// is left behind on failure.
    @discardableResult
    public static func generate(_ spec: SynthWorldSpec, to directory: String) throws -> Manifest {
        try spec.validate()
        let world = SynthWorld(spec)
        let variants = SynthWorldSpec.variants
        let description = "Synthetic concept world (a simulation, not real data): \(spec.concepts) concepts, " +
            "\(spec.heldOutConcepts) held out of training captions; written by proclip synth"
        let source: JSONValue = .object([
            "kind": .string("simulation"),
            "generator": .string("proclip synth"),
            "note": .string("simulated CLIP and LLM embeddings of a made-up world; see docs/synthetic-world.md"),
            "world": try JSONValue(encoding: spec),
        ])
        return try DatasetWriter.create(at: directory, dtype: spec.dtype, dEmbed: spec.dEmbed, dLLM: spec.dLLM,
                                        variants: variants, description: description, source: source) { w in
            var first = 0
            for (split, count) in [(Split.train, spec.pairs), (Split.eval, spec.evalPairs)] {
                var done = 0
                var shard = 0
                while done < count {
                    let rows = min(spec.shardRows, count - done)
                    try writeShard(world, w, name: "\(split.rawValue)-\(pad5(shard))", split: split,
                                   globalRange: (first + done)..<(first + done + rows))
                    done += rows
                    shard += 1
                }
                first += count
            }
            try writePrompts(world, w)
        }
    }

    /// The sample with global index `index` (train samples first, then eval).
    static func sample(_ world: SynthWorld, _ index: Int, _ rng: inout SplitMix64) -> SynthSample {
        let s = world.spec
        let lex = world.lexicon
        let train = index < s.pairs
        let firstHeldOut = s.concepts - s.heldOutConcepts
        let k = s.minConceptsPerSample + rng.below(s.maxConceptsPerSample - s.minConceptsPerSample + 1)
        var concepts: [Int] = []
        repeat {
            concepts.removeAll(keepingCapacity: true)
            while concepts.count < k {
                let c = rng.below(s.concepts)
                if !concepts.contains(c) { concepts.append(c) }
            }
        } while train && concepts.allSatisfy { $0 >= firstHeldOut }
        // Training captions never name held-out concepts; evaluation captions name everything.
        let named = train ? concepts.filter { $0 < firstHeldOut } : concepts
        let short = Array(named.prefix(1 + rng.below(2)))
        let shortTokens = lex.caption(short, .en)
        return SynthSample(concepts: concepts, captions: [
            shortTokens,
            lex.caption(named, .en),
            noisy(shortTokens, world, nameable: train ? firstHeldOut : s.concepts, &rng),
            lex.caption(named, .de),
            lex.caption(named, .zh),
        ])
    }

    /// A corrupted short caption: words dropped (one concept word always stays), maybe two
    /// adjacent words swapped, maybe one concept word replaced by a word of another nameable concept.
    static func noisy(_ tokens: [Int], _ world: SynthWorld, nameable: Int, _ rng: inout SplitMix64) -> [Int] {
        let s = world.spec, lex = world.lexicon
        var keep = tokens.filter { _ in rng.uniform() >= s.noisyDropRate }
        if !keep.contains(where: { lex.concept(of: $0) != nil }) {
            let words = tokens.filter { lex.concept(of: $0) != nil }
            keep.append(words[rng.below(words.count)])
        }
        if keep.count >= 2, rng.uniform() < s.noisySwapRate {
            let i = rng.below(keep.count - 1)
            keep.swapAt(i, i + 1)
        }
        if rng.uniform() < s.noisySubstituteRate {
            let positions = keep.indices.filter { lex.concept(of: keep[$0]) != nil }
            let at = positions[rng.below(positions.count)]
            let c = rng.below(nameable)
            keep[at] = lex.wordToken(.en, c, rng.below(lex.nameLength(c)))
        }
        return keep
    }

    private static func writeShard(_ world: SynthWorld, _ w: DatasetWriter, name: String, split: Split,
                                   globalRange: Range<Int>) throws {
        let s = world.spec, v = SynthWorldSpec.variants.count, n = globalRange.count
        let image = Slab(count: n * s.dEmbed), clip = Slab(count: n * v * s.dEmbed), llm = Slab(count: n * v * s.dLLM)
        var ids = [Int32](repeating: -1, count: n * s.maxConceptsPerSample)
        var captions: [String] = []
        captions.reserveCapacity(n)
        for (i, g) in globalRange.enumerated() {
            var rng = SplitMix64(seed: SplitMix64.mix(SplitMix64.mix(s.seed, sampleSalt), UInt64(g)))
            let sample = sample(world, g, &rng)
            world.image(sample.concepts, &rng, image.at(i * s.dEmbed))
            for (k, tokens) in sample.captions.enumerated() {
                world.clipText(tokens, &rng, clip.at((i * v + k) * s.dEmbed))
                world.llm(tokens, &rng, llm.at((i * v + k) * s.dLLM))
            }
            for (j, c) in sample.concepts.enumerated() { ids[i * s.maxConceptsPerSample + j] = Int32(c) }
            var line = "{\"concepts\": [" + sample.concepts.map(String.init).joined(separator: ", ") + "], \"captions\": {"
            for (k, tokens) in sample.captions.enumerated() {
                line += (k > 0 ? ", " : "") + "\"\(SynthWorldSpec.variants[k])\": \"" +
                    jsonEscaped(world.lexicon.text(tokens, SynthSample.languages[k])) + "\""
            }
            captions.append(line + "}}")
        }
        try w.addShard(name: name, split: split, rows: n,
                       image: UnsafeBufferPointer(image.buffer), clipText: UnsafeBufferPointer(clip.buffer),
                       llm: UnsafeBufferPointer(llm.buffer), concepts: (ids, s.maxConceptsPerSample), captions: captions)
    }

    private static func writePrompts(_ world: SynthWorld, _ w: DatasetWriter) throws {
        let s = world.spec, lex = world.lexicon
        let clip = Slab(count: s.concepts * s.dEmbed), llm = Slab(count: s.concepts * s.dLLM)
        for c in 0..<s.concepts {
            var rng = SplitMix64(seed: SplitMix64.mix(SplitMix64.mix(s.seed, promptSalt), UInt64(c)))
            let tokens = lex.caption([c], .en)
            world.clipText(tokens, &rng, clip.at(c * s.dEmbed))
            world.llm(tokens, &rng, llm.at(c * s.dLLM))
        }
        let labels = (0..<s.concepts).map { lex.names[0][$0].joined(separator: " ") }
        try w.setPrompts(labels: labels, texts: labels.map { "a photo of \($0)" },
                         heldOut: Array((s.concepts - s.heldOutConcepts)..<s.concepts),
                         clipText: UnsafeBufferPointer(clip.buffer), llm: UnsafeBufferPointer(llm.buffer))
    }
}

/// `n` as five digits with leading zeros.
func pad5(_ n: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, 5 - s.count)) + s
}

/// `s` escaped for a JSON string literal.
func jsonEscaped(_ s: String) -> String {
    var out = ""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if ch.value < 0x20 { out += "\\u00" + (ch.value < 16 ? "0" : "") + String(ch.value, radix: 16) } else { out.unicodeScalars.append(ch) }
        }
    }
    return out
}
