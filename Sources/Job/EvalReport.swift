/// Retrieval scores of one caption variant, each in [0, 1].
public struct RetrievalScores: Codable, Sendable, Equatable {
    public var i2t_r1, i2t_r5, i2t_r10: Double
    public var t2i_r1, t2i_r5, t2i_r10: Double
}

/// What `proclip eval` reports for one model (and what `eval.json` holds per phase end).
public struct EvalReport: Codable, Sendable, Equatable {
    /// Which model: the CLIP-text baseline or a trained one.
    public var model: String
    /// The phase after which it was taken (nil for the baseline).
    public var phase: String?
    /// Global step at which it was taken.
    public var step: Int?
    /// Per caption variant: image→text and text→image recall@1/5/10.
    public var variants: [String: RetrievalScores]
    /// Zero-shot top-1 over the concept prompts (the top concept is one of the image's); nil when
    /// the dataset has no prompts.
    public var zeroshot_top1: Double?
    /// Top-1 among the held-out concepts' prompts, on images showing a held-out concept.
    public var heldout_top1: Double?
    /// Mean cosine between the tuned and the original image embeddings on the eval split.
    public var image_drift_cos: Double
    /// Eval samples the figures are over.
    public var samples: Int

    public init(model: String, phase: String?, step: Int?, variants: [String: RetrievalScores], zeroshot_top1: Double?,
                heldout_top1: Double?, image_drift_cos: Double, samples: Int) {
        self.model = model
        self.phase = phase
        self.step = step
        self.variants = variants
        self.zeroshot_top1 = zeroshot_top1
        self.heldout_top1 = heldout_top1
        self.image_drift_cos = image_drift_cos
        self.samples = samples
    }
}
