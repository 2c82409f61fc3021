/// The sizes of the trainable model: the text adaptor on the LLM embedding and the image head on
/// the CLIP image embedding (docs/design.md §2).
public struct ModelShape: Sendable, Equatable, Codable {
    /// Width of the frozen LLM embedding, `D_llm`.
    public var dLLM: Int
    /// Width of CLIP's joint embedding space, `D_embed`.
    public var dEmbed: Int
    /// Residual blocks of the text adaptor, `L`.
    public var textBlocks: Int
    /// Hidden width of a text block is `textExpansion · D_llm`.
    public var textExpansion: Int
    /// Residual blocks of the image head (at least 1).
    public var imageBlocks: Int
    /// Hidden width of an image block is `imageExpansion · D_embed`.
    public var imageExpansion: Int

    public init(dLLM: Int, dEmbed: Int, textBlocks: Int, textExpansion: Int, imageBlocks: Int = 1, imageExpansion: Int) {
        self.dLLM = dLLM
        self.dEmbed = dEmbed
        self.textBlocks = textBlocks
        self.textExpansion = textExpansion
        self.imageBlocks = imageBlocks
        self.imageExpansion = imageExpansion
    }

    /// Hidden width of a text block.
    public var textHidden: Int { textExpansion * dLLM }
    /// Hidden width of an image-head block.
    public var imageHidden: Int { imageExpansion * dEmbed }

    /// The first problem with these sizes, or nil.
    public func problem() -> String? {
        if dLLM < 1 { return "d_llm must be at least 1 (got \(dLLM))" }
        if dEmbed < 1 { return "d_embed must be at least 1 (got \(dEmbed))" }
        if textBlocks < 0 { return "text_blocks must be 0 or more (got \(textBlocks))" }
        if textExpansion < 1 { return "text_expansion must be at least 1 (got \(textExpansion))" }
        if imageBlocks < 1 { return "image_blocks must be at least 1 (got \(imageBlocks))" }
        if imageExpansion < 1 { return "image_expansion must be at least 1 (got \(imageExpansion))" }
        return nil
    }
}
