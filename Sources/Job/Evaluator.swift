import Features
import JobConfig
import Model
import Tensors

/// Retrieval, zero-shot and drift figures on the eval split (docs/design.md §4), for the CLIP-text
/// baseline and for a trained model. Features are computed in chunks with the model's own
/// forward passes; similarities with one GEMM per variant.
///
/// Sendable: every stored property is a `let` of a Sendable type, and `evaluate`/`baseline` only
/// read them (the dataset is a read-only mapping), so an evaluation may run on another thread.
public final class Evaluator: Sendable {
    public let dataset: FeatureDataset
    public let variantNames: [String]
    let layout: ParameterLayout
    let rows: [Int]
    let n: Int
    // Eval inputs: image (N, E); per job variant k: clip text (N, E) and llm (N, D).
    let image: [Float]
    let clipText: [[Float]]
    let llm: [[Float]]
    let concepts: [[Int]]?

    static let chunk = 256

    /// Reads the eval split (all of it, or its first `maxSamples`).
    public init(dataset: FeatureDataset, config: JobConfig, variantMap: [Int], maxSamples: Int? = nil) throws {
        self.dataset = dataset
        variantNames = config.data.variants
        layout = ParameterLayout(config.model)
        var r = dataset.indices(of: .eval)
        if let maxSamples { r = Array(r.prefix(maxSamples)) }
        guard r.count >= 2 else { throw TrainingError("\(dataset.directory): the eval split has \(r.count) samples; need at least 2") }
        rows = r
        n = r.count
        let E = dataset.dEmbed, D = dataset.dLLM
        var img = [Float](repeating: 0, count: n * E)
        var ct: [[Float]] = [], lm: [[Float]] = []
        for v in variantMap {
            var c = [Float](repeating: 0, count: n * E), l = [Float](repeating: 0, count: n * D)
            c.withUnsafeMutableBufferPointer { cp in
                l.withUnsafeMutableBufferPointer { lp in
                    dataset.read(rows: r[...], variants: [v], llm: lp.baseAddress, clipText: cp.baseAddress, image: nil)
                }
            }
            ct.append(c)
            lm.append(l)
        }
        img.withUnsafeMutableBufferPointer { ip in
            dataset.read(rows: r[...], variants: [0], llm: nil, clipText: nil, image: ip.baseAddress)
        }
        image = img
        clipText = ct
        llm = lm
        let cs = r.map { dataset.concepts(of: $0) }
        concepts = cs.allSatisfy { $0 != nil } ? cs.map { $0! } : nil
    }

    /// The CLIP-text baseline: CLIP's own text and image embeddings, and CLIP prompts.
    public func baseline() -> EvalReport {
        let E = dataset.dEmbed
        let u = normalized(image, E)
        let texts = clipText.map { normalized($0, E) }
        let prompts = dataset.prompts.map { normalized($0.clipText, E) }
        return report(model: "clip-text baseline", phase: nil, step: nil, u: u, texts: texts, prompts: prompts, drift: 1)
    }

    /// A trained model: the adaptor on the LLM embeddings (captions and prompts), the tuned head
    /// on the image embeddings.
    public func evaluate(_ store: ParameterStore, model: String, phase: String?, step: Int?) -> EvalReport {
        let E = dataset.dEmbed
        let u = headFeatures(store)
        let texts = llm.map { adaptorFeatures(store, $0) }
        let prompts = dataset.prompts.map { adaptorFeatures(store, $0.llm) }
        let original = normalized(image, E)
        var drift = 0.0
        for i in 0..<n {
            var d: Float = 0
            for k in 0..<E { d += u[i * E + k] * original[i * E + k] }
            drift += Double(d)
        }
        return report(model: model, phase: phase, step: step, u: u, texts: texts, prompts: prompts, drift: drift / Double(n))
    }

    func report(model: String, phase: String?, step: Int?, u: [Float], texts: [[Float]], prompts: [Float]?, drift: Double) -> EvalReport {
        var variants: [String: RetrievalScores] = [:]
        for (k, t) in texts.enumerated() { variants[variantNames[k]] = retrieval(u, t) }
        var zs: Double?, ho: Double?
        if let prompts, let concepts, let p = dataset.prompts {
            (zs, ho) = zeroShot(u, prompts, concepts: concepts, heldOut: p.heldOut)
        }
        return EvalReport(model: model, phase: phase, step: step, variants: variants, zeroshot_top1: zs, heldout_top1: ho,
                          image_drift_cos: drift, samples: n)
    }

    /// Recall@1/5/10 both ways: the true pair's rank among all N in its row (image→text) or column.
    func retrieval(_ u: [Float], _ t: [Float]) -> RetrievalScores {
        let E = dataset.dEmbed
        var s = [Float](repeating: 0, count: n * n)
        u.withUnsafeBufferPointer { up in
            t.withUnsafeBufferPointer { tp in
                s.withUnsafeMutableBufferPointer { sp in
                    BLAS.gemm(transA: false, transB: true, m: n, n: n, k: E, a: up.baseAddress!, lda: E,
                              b: tp.baseAddress!, ldb: E, c: sp.baseAddress!, ldc: n)
                }
            }
        }
        var i2t = [0, 0, 0], t2i = [0, 0, 0]
        for i in 0..<n {
            let own = s[i * n + i]
            var rowRank = 0, colRank = 0
            for j in 0..<n where j != i {
                if s[i * n + j] > own { rowRank += 1 }
                if s[j * n + i] > own { colRank += 1 }
            }
            for (c, k) in [1, 5, 10].enumerated() {
                if rowRank < k { i2t[c] += 1 }
                if colRank < k { t2i[c] += 1 }
            }
        }
        let f = { (x: Int) in Double(x) / Double(self.n) }
        return RetrievalScores(i2t_r1: f(i2t[0]), i2t_r5: f(i2t[1]), i2t_r10: f(i2t[2]),
                               t2i_r1: f(t2i[0]), t2i_r5: f(t2i[1]), t2i_r10: f(t2i[2]))
    }

    /// Zero-shot: the best-scoring concept prompt is correct when the image shows that concept.
    /// Held-out: on images showing a held-out concept, the best among the held-out prompts.
    func zeroShot(_ u: [Float], _ prompts: [Float], concepts: [[Int]], heldOut: [Int]) -> (Double, Double?) {
        let E = dataset.dEmbed
        let c = prompts.count / E
        var correct = 0, hoCorrect = 0, hoTotal = 0
        let held = Set(heldOut)
        for i in 0..<n {
            var best = -Float.infinity, bestC = -1, bestHeld = -Float.infinity, bestHeldC = -1
            for k in 0..<c {
                var d: Float = 0
                for e in 0..<E { d += u[i * E + e] * prompts[k * E + e] }
                if d > best { best = d; bestC = k }
                if held.contains(k), d > bestHeld { bestHeld = d; bestHeldC = k }
            }
            if concepts[i].contains(bestC) { correct += 1 }
            if concepts[i].contains(where: held.contains) {
                hoTotal += 1
                if concepts[i].contains(bestHeldC) { hoCorrect += 1 }
            }
        }
        return (Double(correct) / Double(n), hoTotal > 0 ? Double(hoCorrect) / Double(hoTotal) : nil)
    }

    func normalized(_ x: [Float], _ dim: Int) -> [Float] {
        var out = x
        let rows = x.count / dim
        let norms = Slab(count: rows)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                L2Normalize.forward(out: op.baseAddress!, norm: norms.base, inp: xp.baseAddress!, rows: rows, cols: dim)
            }
        }
        return out
    }

    /// Text features of the LLM embeddings `e` (rows, D_llm) through the trained adaptor.
    func adaptorFeatures(_ store: ParameterStore, _ e: [Float]) -> [Float] {
        let D = layout.shape.dLLM, E = layout.shape.dEmbed
        let rows = e.count / D
        let adaptor = TextAdaptor(layout: layout, maxRows: min(rows, Evaluator.chunk))
        var out = [Float](repeating: 0, count: rows * E)
        e.withUnsafeBufferPointer { ep in
            out.withUnsafeMutableBufferPointer { op in
                for r0 in stride(from: 0, to: rows, by: Evaluator.chunk) {
                    let m = min(Evaluator.chunk, rows - r0)
                    adaptor.forward(out: op.baseAddress! + r0 * E, e: ep.baseAddress! + r0 * D, params: store.params.base, rows: m)
                }
            }
        }
        return out
    }

    /// Image features of the eval images through the tuned head.
    func headFeatures(_ store: ParameterStore) -> [Float] {
        let E = layout.shape.dEmbed
        let head = ImageHead(layout: layout, maxRows: min(n, Evaluator.chunk))
        var out = [Float](repeating: 0, count: n * E)
        image.withUnsafeBufferPointer { ip in
            out.withUnsafeMutableBufferPointer { op in
                for r0 in stride(from: 0, to: n, by: Evaluator.chunk) {
                    let m = min(Evaluator.chunk, n - r0)
                    head.forward(out: op.baseAddress! + r0 * E, v: ip.baseAddress! + r0 * E, base: store.params.base, rows: m)
                }
            }
        }
        return out
    }
}
