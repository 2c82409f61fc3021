#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// The synthetic concept world's frozen "encoders" — a simulation of CLIP and an LLM embedder,
/// not models (see docs/synthetic-world.md for what each map does and why):
///
/// - concept latents `z_c` (latentDim, unit norm);
/// - CLIP's joint space: one random linear map `A (D_embed, latentDim)`. Image = `n(n(A·Σ_c z_c) + σ_img ε)`
///   over every concept in the image. CLIP text = the same map over the summed CLIP word vectors of
///   the first `clipTokenLimit` tokens only; CLIP knows English words (`z_c / m` for a word of
///   an m-word name) and nothing else: any other word is a fixed random vector (token overlap
///   with English — `de` cognates — is the only non-English signal);
/// - the LLM: every token, each word of concept c in language ℓ worth `(z_c + τ·δ_cℓ) / m`
///   (δ a random unit vector: translations land near each other), fillers a small language
///   vector; pooled, then `u = W1·p̂` (D_llm, latentDim), `h = u + β·tanh(W2·u)`, `n(n(h) + σ_llm ε)`.
///
/// ε is Gaussian with expected norm 1, so each σ is a noise-to-signal norm ratio.
struct SynthWorld {
    let spec: SynthWorldSpec
    let lexicon: SynthLexicon
    /// Concept latents, `(C, Z)`.
    let latents: [Double]
    /// CLIP's joint-space map, `(D_embed, Z)`.
    let clipMap: [Double]
    /// The LLM's input map `(D_llm, Z)` and mixing matrix `(D_llm, D_llm)`.
    let llmIn: [Double], llmMix: [Double]
    /// Latent vector of every token as CLIP's text encoder reads it, `(T, Z)`.
    let clipWord: [Double]
    /// Latent vector of every token as the LLM reads it, `(T, Z)`.
    let llmWord: [Double]

    static let worldSalt: UInt64 = 0x574F_524C_44  // "WORLD"

    init(_ spec: SynthWorldSpec) {
        self.spec = spec
        var rng = SplitMix64(seed: SplitMix64.mix(spec.seed, SynthWorld.worldSalt))
        let c = spec.concepts, z = spec.latentDim
        lexicon = SynthLexicon(concepts: c, cognateRate: spec.cognateRate, rng: &rng)
        func unit(_ n: Int, _ r: inout SplitMix64) -> [Double] {
            let v = (0..<n).map { _ in r.normal() }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / norm }
        }
        latents = (0..<c).flatMap { _ in unit(z, &rng) }
        clipMap = (0..<(spec.dEmbed * z)).map { _ in rng.normal() }
        llmIn = (0..<(spec.dLLM * z)).map { _ in rng.normal() }
        llmMix = (0..<(spec.dLLM * spec.dLLM)).map { _ in rng.normal() / Double(spec.dLLM).squareRoot() }

        let lex = lexicon
        var englishWord: [String: (concept: Int, m: Int)] = [:]
        for ci in 0..<c { for w in lex.names[0][ci] { englishWord[w] = (ci, lex.nameLength(ci)) } }
        var clip = [Double](repeating: 0, count: lex.tokenCount * z)
        var llm = [Double](repeating: 0, count: lex.tokenCount * z)
        for lang in SynthLanguage.allCases {
            for ci in 0..<c {
                let m = Double(lex.nameLength(ci))
                let delta = unit(z, &rng)
                for j in 0..<lex.nameLength(ci) {
                    let t = lex.wordToken(lang, ci, j)
                    let word = lex.names[lang.rawValue][ci][j]
                    let noise = unit(z, &rng)  // drawn for every word, so the stream does not depend on spelling
                    for k in 0..<z {
                        llm[t * z + k] = (latents[ci * z + k] + spec.translationNoise * delta[k]) / m
                        if let known = englishWord[word] {
                            clip[t * z + k] = latents[known.concept * z + k] / Double(known.m)
                        } else {
                            clip[t * z + k] = noise[k] / m
                        }
                    }
                }
            }
            for f in 0..<5 {
                let t = lex.fillerToken(lang, f)
                let vClip = unit(z, &rng), vLLM = unit(z, &rng)
                for k in 0..<z {
                    clip[t * z + k] = spec.fillerWeight * vClip[k]
                    llm[t * z + k] = spec.fillerWeight * vLLM[k]
                }
            }
        }
        clipWord = clip
        llmWord = llm
    }

    /// Image embedding of a sample showing `concepts`, into `out (D_embed)`.
    func image(_ concepts: [Int], _ rng: inout SplitMix64, _ out: UnsafeMutablePointer<Float>) {
        let z = spec.latentDim
        var p = [Double](repeating: 0, count: z)
        for c in concepts { for k in 0..<z { p[k] += latents[c * z + k] } }
        project(p, clipMap, spec.dEmbed, noise: spec.imageNoise, &rng, out)
    }

    /// CLIP text embedding of a caption: only its first `clipTokenLimit` tokens; into `out (D_embed)`.
    func clipText(_ tokens: [Int], _ rng: inout SplitMix64, _ out: UnsafeMutablePointer<Float>) {
        let z = spec.latentDim
        var p = [Double](repeating: 0, count: z)
        for t in tokens.prefix(spec.clipTokenLimit) { for k in 0..<z { p[k] += clipWord[t * z + k] } }
        project(p, clipMap, spec.dEmbed, noise: spec.clipTextNoise, &rng, out)
    }

    /// LLM embedding of a caption: every token; into `out (D_llm)`.
    func llm(_ tokens: [Int], _ rng: inout SplitMix64, _ out: UnsafeMutablePointer<Float>) {
        let z = spec.latentDim, d = spec.dLLM
        var p = [Double](repeating: 0, count: z)
        for t in tokens { for k in 0..<z { p[k] += llmWord[t * z + k] } }
        normalize(&p)
        var u = [Double](repeating: 0, count: d)
        for i in 0..<d { for k in 0..<z { u[i] += llmIn[i * z + k] * p[k] } }
        var h = u
        for i in 0..<d {
            var a = 0.0
            for j in 0..<d { a += llmMix[i * d + j] * u[j] }
            h[i] += spec.llmNonlinearity * tanh(a)
        }
        finish(&h, noise: spec.llmNoise, &rng, out)
    }

    /// `n(n(M·p) + σ ε)` into `out (rows)`.
    private func project(_ p: [Double], _ m: [Double], _ rows: Int, noise: Double, _ rng: inout SplitMix64,
                         _ out: UnsafeMutablePointer<Float>) {
        let z = spec.latentDim
        var y = [Double](repeating: 0, count: rows)
        for i in 0..<rows { for k in 0..<z { y[i] += m[i * z + k] * p[k] } }
        finish(&y, noise: noise, &rng, out)
    }

    private func finish(_ y: inout [Double], noise: Double, _ rng: inout SplitMix64, _ out: UnsafeMutablePointer<Float>) {
        normalize(&y)
        let s = noise / Double(y.count).squareRoot()
        for i in 0..<y.count { y[i] += s * rng.normal() }
        normalize(&y)
        for i in 0..<y.count { out[i] = Float(y[i]) }
    }

    private func normalize(_ v: inout [Double]) {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if n > 0 { for i in 0..<v.count { v[i] /= n } }
    }
}
