/// A whole global batch held in memory, as in a `proclip grad` batch file:
/// llm (B, V, D_llm), clipText (B, V, E), image (B, E), and the caption variant of each row for
/// the contrast phase, variant (B).
public struct BatchArrays {
    public let batch: Int
    public let variants: Int
    public var llm: [Float]
    public var clipText: [Float]
    public var image: [Float]
    public var variant: [Int32]

    public init(batch: Int, variants: Int, llm: [Float], clipText: [Float], image: [Float], variant: [Int32]) {
        self.batch = batch
        self.variants = variants
        self.llm = llm
        self.clipText = clipText
        self.image = image
        self.variant = variant
    }

    /// Copies the rows `engine` owns into its inputs.
    public func fill(_ engine: StepEngine) {
        let s = engine.layout.shape
        let D = s.dLLM, E = s.dEmbed, V = variants
        let rows = engine.own.rows
        let m = rows.count
        llm.withUnsafeBufferPointer { llm in
            clipText.withUnsafeBufferPointer { ct in
                switch engine.settings.kind {
                case .inherit:
                    for (k, v) in engine.textVariants.enumerated() {
                        for (j, i) in rows.enumerated() {
                            (engine.llmInput.base + (k * m + j) * D).update(from: llm.baseAddress! + (i * V + v) * D, count: D)
                            (engine.clipTextInput.base + (k * m + j) * E).update(from: ct.baseAddress! + (i * V + v) * E, count: E)
                        }
                    }
                case .contrast:
                    for (j, i) in rows.enumerated() {
                        let v = Int(variant[i])
                        (engine.llmInput.base + j * D).update(from: llm.baseAddress! + (i * V + v) * D, count: D)
                    }
                    image.withUnsafeBufferPointer { img in
                        for (j, i) in rows.enumerated() {
                            (engine.imageInput.base + j * E).update(from: img.baseAddress! + i * E, count: E)
                        }
                    }
                }
            }
        }
    }
}
