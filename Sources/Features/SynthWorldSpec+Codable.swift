/// JSON/YAML form of `SynthWorldSpec`: snake_case keys; a missing key keeps its default; an
/// unknown key is an error naming it.
extension SynthWorldSpec {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case seed, pairs, dtype, concepts
        case evalPairs = "eval_pairs", shardRows = "shard_rows"
        case heldOutConcepts = "held_out_concepts"
        case minConceptsPerSample = "min_concepts_per_sample", maxConceptsPerSample = "max_concepts_per_sample"
        case latentDim = "latent_dim", dEmbed = "d_embed", dLLM = "d_llm"
        case clipTokenLimit = "clip_token_limit"
        case imageNoise = "image_noise", clipTextNoise = "clip_text_noise", llmNoise = "llm_noise"
        case translationNoise = "translation_noise", llmNonlinearity = "llm_nonlinearity"
        case fillerWeight = "filler_weight", cognateRate = "cognate_rate"
        case noisyDropRate = "noisy_drop_rate", noisySwapRate = "noisy_swap_rate"
        case noisySubstituteRate = "noisy_substitute_rate"
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let all = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = all.allKeys.first(where: { CodingKeys(stringValue: $0.stringValue) == nil }) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [unknown],
                                                    debugDescription: "unknown key '\(unknown.stringValue)' in the synthetic world"))
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = SynthWorldSpec()
        func get<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try get(.seed, &s.seed); try get(.pairs, &s.pairs); try get(.evalPairs, &s.evalPairs)
        try get(.shardRows, &s.shardRows); try get(.dtype, &s.dtype); try get(.concepts, &s.concepts)
        try get(.heldOutConcepts, &s.heldOutConcepts)
        try get(.minConceptsPerSample, &s.minConceptsPerSample); try get(.maxConceptsPerSample, &s.maxConceptsPerSample)
        try get(.latentDim, &s.latentDim); try get(.dEmbed, &s.dEmbed); try get(.dLLM, &s.dLLM)
        try get(.clipTokenLimit, &s.clipTokenLimit)
        try get(.imageNoise, &s.imageNoise); try get(.clipTextNoise, &s.clipTextNoise); try get(.llmNoise, &s.llmNoise)
        try get(.translationNoise, &s.translationNoise); try get(.llmNonlinearity, &s.llmNonlinearity)
        try get(.fillerWeight, &s.fillerWeight); try get(.cognateRate, &s.cognateRate)
        try get(.noisyDropRate, &s.noisyDropRate); try get(.noisySwapRate, &s.noisySwapRate)
        try get(.noisySubstituteRate, &s.noisySubstituteRate)
        self = s
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seed, forKey: .seed); try c.encode(pairs, forKey: .pairs); try c.encode(evalPairs, forKey: .evalPairs)
        try c.encode(shardRows, forKey: .shardRows); try c.encode(dtype, forKey: .dtype); try c.encode(concepts, forKey: .concepts)
        try c.encode(heldOutConcepts, forKey: .heldOutConcepts)
        try c.encode(minConceptsPerSample, forKey: .minConceptsPerSample)
        try c.encode(maxConceptsPerSample, forKey: .maxConceptsPerSample)
        try c.encode(latentDim, forKey: .latentDim); try c.encode(dEmbed, forKey: .dEmbed); try c.encode(dLLM, forKey: .dLLM)
        try c.encode(clipTokenLimit, forKey: .clipTokenLimit)
        try c.encode(imageNoise, forKey: .imageNoise); try c.encode(clipTextNoise, forKey: .clipTextNoise)
        try c.encode(llmNoise, forKey: .llmNoise); try c.encode(translationNoise, forKey: .translationNoise)
        try c.encode(llmNonlinearity, forKey: .llmNonlinearity); try c.encode(fillerWeight, forKey: .fillerWeight)
        try c.encode(cognateRate, forKey: .cognateRate); try c.encode(noisyDropRate, forKey: .noisyDropRate)
        try c.encode(noisySwapRate, forKey: .noisySwapRate); try c.encode(noisySubstituteRate, forKey: .noisySubstituteRate)
    }
}
