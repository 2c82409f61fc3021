/// Every parameter of the synthetic concept world — a simulation, not real data (see
/// docs/synthetic-world.md). The job config fills this struct; the generator writes it into the
/// dataset manifest's `source.world`. Defaults give a world that a 2-core machine generates in
/// about a second and on which retrieval does not saturate.
public struct SynthWorldSpec: Sendable, Codable, Equatable {
    /// Seed of everything: concept latents, vocabularies, maps, samples, noise.
    public var seed: UInt64 = 0
    /// Training pairs (image + its captions).
    public var pairs: Int = 4096
    /// Evaluation pairs (a separate split; their captions may name held-out concepts).
    public var evalPairs: Int = 1024
    /// Rows per shard file.
    public var shardRows: Int = 2048
    /// Element type of the stored arrays.
    public var dtype: NpyDType = .float32

    /// Number of concepts C.
    public var concepts: Int = 64
    /// The last `heldOutConcepts` concepts are never named in a training caption (they still
    /// appear in training images), for measuring what tuning forgets.
    public var heldOutConcepts: Int = 8
    /// Concepts per sample: uniform in `minConceptsPerSample...maxConceptsPerSample`, distinct.
    public var minConceptsPerSample: Int = 2
    /// See `minConceptsPerSample`.
    public var maxConceptsPerSample: Int = 6
    /// Width of the concept latents. Smaller than C, so concepts are not orthogonal.
    public var latentDim: Int = 24
    /// Width of CLIP's joint space (D_embed).
    public var dEmbed: Int = 32
    /// Width of the LLM embedding (D_llm).
    public var dLLM: Int = 64

    /// CLIP's text encoder reads only the first `clipTokenLimit` tokens of a caption (the
    /// 77-token truncation, scaled down): long captions lose their tail.
    public var clipTokenLimit: Int = 10
    /// Noise-to-signal norm ratio of image embeddings (nuisance the captions never describe).
    public var imageNoise: Double = 0.6
    /// Noise-to-signal norm ratio of CLIP text embeddings.
    public var clipTextNoise: Double = 0.25
    /// Noise-to-signal norm ratio of LLM embeddings.
    public var llmNoise: Double = 0.25
    /// Norm of the per-(concept, language) offset of a translated word in the LLM: translations
    /// land near, not on, their English counterparts.
    public var translationNoise: Double = 0.35
    /// Strength β of the LLM map's non-linearity `u + β·tanh(W u)`.
    public var llmNonlinearity: Double = 0.7
    /// Weight of each filler word ("a", "photo", "of", "with", "and", and their translations).
    public var fillerWeight: Double = 0.15
    /// Probability that a `de` concept word is spelled as in English (a cognate CLIP can read).
    public var cognateRate: Double = 0.2
    /// `noisy_en`: probability of dropping each word of the short caption (one concept word stays).
    public var noisyDropRate: Double = 0.25
    /// `noisy_en`: probability of swapping two adjacent words.
    public var noisySwapRate: Double = 0.3
    /// `noisy_en`: probability of replacing one concept word by a word of another concept.
    public var noisySubstituteRate: Double = 0.2

    /// The caption variants, in array order: two English lengths, a corrupted short caption, and
    /// two long captions in simulated non-English languages.
    public static let variants = ["short_en", "long_en", "noisy_en", "long_de", "long_zh"]

    /// A world with every default.
    public init() {}

    /// Throws a one-line description of the first out-of-range parameter.
    public func validate() throws {
        func need(_ ok: Bool, _ what: String) throws { if !ok { throw SynthSpecError(description: what) } }
        try need(pairs >= 1 && evalPairs >= 0, "pairs must be ≥ 1 and eval pairs ≥ 0")
        try need(shardRows >= 1, "shard rows must be ≥ 1")
        try need(dtype != .int32, "dtype must be float32 or float16")
        try need(concepts >= 2, "need at least 2 concepts")
        try need(heldOutConcepts >= 0 && heldOutConcepts < concepts, "held-out concepts must be in 0..<concepts")
        try need(minConceptsPerSample >= 1 && minConceptsPerSample <= maxConceptsPerSample,
                 "concepts per sample: need 1 ≤ min ≤ max")
        try need(maxConceptsPerSample <= concepts - heldOutConcepts, "max concepts per sample exceeds the nameable concepts")
        try need(latentDim >= 2 && dEmbed >= 2 && dLLM >= 2, "latent, D_embed and D_llm must be ≥ 2")
        try need(clipTokenLimit >= 1, "CLIP token limit must be ≥ 1")
        for (name, x) in [("image noise", imageNoise), ("CLIP text noise", clipTextNoise), ("LLM noise", llmNoise),
                          ("translation noise", translationNoise), ("LLM non-linearity", llmNonlinearity),
                          ("filler weight", fillerWeight)] {
            try need(x >= 0 && x.isFinite, "\(name) must be ≥ 0")
        }
        for (name, p) in [("cognate rate", cognateRate), ("noisy drop rate", noisyDropRate),
                          ("noisy swap rate", noisySwapRate), ("noisy substitute rate", noisySubstituteRate)] {
            try need(p >= 0 && p <= 1, "\(name) must be in [0, 1]")
        }
    }
}

/// A world parameter out of range.
public struct SynthSpecError: Error, CustomStringConvertible, Equatable {
    /// One line saying which parameter and why.
    public let description: String
}
