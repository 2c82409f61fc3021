import ArgumentParser
import Basics
import JobConfig
import Model
import Tensors

/// `proclip grad`: one forward/backward on a given batch, written out for comparison with another
/// implementation (the NumPy reference in Scripts/reference, or PyTorch).
struct GradCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grad",
        abstract: "Compute one phase's losses, features and parameter gradients on a batch.",
        discussion: """
            The batch file (safetensors) holds llm [B,V,D_llm], clip_text [B,V,D_embed], image [B,D_embed] \
            (float32) and optionally variant [B] (int32: the caption variant each row uses in a contrast \
            phase; when absent, drawn per row by the seeded rule of the sampler). V is the number of the \
            config's data.variants. The output holds param/<name>, ema/<name>, grad/<name> (the groups \
            the phase computes), feature/text, feature/image, feature/teacher, loss/<term> and loss/total.
            Without --params, parameters come from the config's seeded initialisation.
            """)

    @Option(help: "Job config (YAML).") var config: String
    @Option(help: "Phase name in the config.") var phase: String
    @Option(help: "Input batch (safetensors).") var batch: String?
    @Option(help: "Parameters (safetensors: PyTorch names, bare or param/-prefixed; ema/<name> for the teacher).")
    var params: String?
    @Option(help: "Output file (safetensors).") var out: String?
    @Option(help: "Split rows and structure groups among K simulated owners and sum (checks the split is exact).")
    var workers: Int = 1
    @Flag(help: "Print the phase's loss settings as one JSON object and exit.") var printSettings = false

    func validate() throws {
        if !printSettings && (batch == nil || out == nil) { throw ValidationError("--batch and --out are required (or --print-settings)") }
        if workers < 1 { throw ValidationError("--workers must be at least 1") }
    }

    func run() throws {
        let job = try JobConfig.load(path: config)
        let ph = try job.phase(named: phase)
        if printSettings {
            print(ph.loss.json)
            return
        }
        let shape = job.model
        let layout = ParameterLayout(shape)
        let file = try SafeTensors(path: batch!)
        let V = job.data.variants.count
        let llmInfo = try file.info("llm")
        guard llmInfo.shape.count == 3, llmInfo.shape[0] >= 1 else {
            throw FileError(batch!, "tensor 'llm': expected shape [B, \(V), \(shape.dLLM)], got \(llmInfo.shape)")
        }
        let B = llmInfo.shape[0]
        let llm = try file.floats("llm", shape: [B, V, shape.dLLM])
        let clipText = try file.floats("clip_text", shape: [B, V, shape.dEmbed])
        let image = try file.floats("image", shape: [B, shape.dEmbed])
        var variant: [Int32]
        if file.tensors["variant"] != nil {
            variant = try file.int32s("variant", shape: [B])
            if let bad = variant.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
                throw FileError(batch!, "tensor 'variant': value \(variant[bad]) at row \(bad) is not a caption variant index (0..<\(V))")
            }
        } else {
            let allowed = ph.kind == .contrast ? ph.loss.contrastVariants : [0]
            variant = (0..<B).map { Int32(allowed[Int(SplitMix64.mix(job.seed, UInt64($0)) % UInt64(allowed.count))]) }
        }
        let store = ParameterStore(layout: layout)
        if let params {
            try store.load(from: SafeTensors(path: params))
        } else {
            store.initialize(seed: job.seed)
        }
        let arrays = BatchArrays(batch: B, variants: V, llm: llm, clipText: clipText, image: image, variant: variant)
        let group = LocalGroup(layout: layout, settings: ph.loss, batch: B, workers: workers)
        for e in group.engines { arrays.fill(e) }
        let terms = group.step(store: store)

        var w = SafeTensorsWriter()
        w.metadata["settings"] = ph.loss.json
        w.metadata["config_hash"] = job.hash
        store.write(into: &w, prefix: "param/", includeEMA: true)
        let computed = group.engines[0].computedGroups
        for e in layout.entries where computed.has(e.group) {
            w.add("grad/" + e.name, shape: e.shape, floats: UnsafeBufferPointer(start: group.grads.base + e.offset, count: e.count))
        }
        let engine = group.engines[0]
        let E = shape.dEmbed
        w.add("feature/text", shape: [B, E], floats: engine.globalFeatures(slot: 0))
        if ph.kind == .contrast {
            w.add("feature/image", shape: [B, E], floats: engine.globalFeatures(slot: 1))
            w.add("feature/teacher", shape: [B, E], floats: engine.globalFeatures(slot: 2))
        }
        for (name, value) in terms.named(ph.kind) {
            w.add("loss/" + name, shape: [], floats: [Float(value)])
        }
        w.add("variant", shape: [B], int32s: variant)
        try w.write(to: out!)
    }
}
