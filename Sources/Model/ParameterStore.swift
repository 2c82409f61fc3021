import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// The model's trainable state: parameters, both Adam moments (slabs with the layout's offsets)
/// and the EMA copy of the image head (the self-distillation teacher; a slab covering the image
/// group's range only). Gradients live with each step engine, since each worker has its own.
public final class ParameterStore {
    public let layout: ParameterLayout
    public let params: Slab
    public let expAvg: Slab
    public let expAvgSq: Slab
    /// EMA of the image head, indexed from `layout.range(of: .image).lowerBound`.
    public let ema: Slab

    public init(layout: ParameterLayout) {
        self.layout = layout
        params = Slab(count: layout.count)
        expAvg = Slab(count: layout.count)
        expAvgSq = Slab(count: layout.count)
        ema = Slab(count: layout.range(of: .image).count)
    }

    /// Offset of the EMA slab within the layout (pass as `shift` when running the teacher).
    public var emaShift: Int { layout.range(of: .image).lowerBound }

    /// The seeded initialisation (documented in README): as PyTorch's defaults for
    /// `nn.Linear` (weight and bias uniform in ±1/√fan_in) and `nn.LayerNorm` (1 and 0); the
    /// second Linear of every image-head block zero, so the head starts as the identity;
    /// `logit_scale = log(1/0.07)`; the EMA equal to the head. Tensor k draws from its own stream
    /// `SplitMix64(mix(seed, k))`, so its values do not depend on the other tensors' sizes.
    public func initialize(seed: UInt64) {
        let p = params.base
        for (k, e) in layout.entries.enumerated() {
            var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(k)))
            let dst = p + e.offset
            let name = e.name
            if name == "logit_scale" {
                dst[0] = Float(log(1 / 0.07))
            } else if e.group == .image && name.contains(".fn.3.") {
                for i in 0..<e.count { dst[i] = 0 }
            } else if isLayerNorm(e) {
                let v: Float = name.hasSuffix(".weight") ? 1 : 0
                for i in 0..<e.count { dst[i] = v }
            } else {
                let bound = 1 / Double(fanIn(of: e)).squareRoot()
                for i in 0..<e.count { dst[i] = Float((2 * rng.uniform() - 1) * bound) }
            }
        }
        expAvg.zero()
        expAvgSq.zero()
        resetEMA()
    }

    /// Sets the EMA teacher to the current image head.
    public func resetEMA() {
        ema.base.update(from: params.base + emaShift, count: ema.count)
    }

    /// Zeroes both Adam moments (a phase's fresh optimizer state).
    public func resetMoments() {
        expAvg.zero()
        expAvgSq.zero()
    }

    private func isLayerNorm(_ e: ParameterLayout.Entry) -> Bool {
        e.shape.count == 1 && (e.name.contains(".ln.") || layout.textFinalLN.weight == e.offset || layout.textFinalLN.bias == e.offset)
    }

    /// The `in` size of the Linear layer an entry belongs to (its weight's second dimension).
    private func fanIn(of e: ParameterLayout.Entry) -> Int {
        if e.shape.count == 2 { return e.shape[1] }
        let weightName = String(e.name.dropLast("bias".count)) + "weight"
        return layout.entry(named: weightName)?.shape[1] ?? 1
    }

    /// Copies the values of tensor `e` out of `slab` (which uses the layout's offsets less `shift`).
    public func values(_ e: ParameterLayout.Entry, in slab: Slab, shift: Int = 0) -> [Float] {
        Array(UnsafeBufferPointer(start: slab.base + (e.offset - shift), count: e.count))
    }

    /// Loads parameters from a safetensors file: each tensor `prefix + name` (the file may use the
    /// bare PyTorch names or `param/`-prefixed ones, detected). When the file holds `ema/<name>`
    /// tensors for the image head, the teacher is loaded from them; otherwise it is reset to the
    /// loaded head. Refuses a missing tensor, a wrong shape or dtype, and non-finite values.
    public func load(from file: SafeTensors) throws {
        let prefix = file.tensors["param/logit_scale"] != nil ? "param/" : ""
        for e in layout.entries {
            let v = try file.floats(prefix + e.name, shape: e.shape.map { $0 })
            (params.base + e.offset).update(from: v, count: e.count)
        }
        let imageEntries = layout.entries(in: [.image])
        if imageEntries.allSatisfy({ file.tensors["ema/" + $0.name] != nil }) {
            for e in imageEntries {
                let v = try file.floats("ema/" + e.name, shape: e.shape.map { $0 })
                (ema.base + (e.offset - emaShift)).update(from: v, count: e.count)
            }
        } else {
            resetEMA()
        }
    }

    /// Adds every parameter as `prefix + name` (and the EMA teacher as `ema/<name>` when
    /// `includeEMA`) to a safetensors writer.
    public func write(into w: inout SafeTensorsWriter, prefix: String = "", includeEMA: Bool = false) {
        for e in layout.entries {
            w.add(prefix + e.name, shape: e.shape, floats: UnsafeBufferPointer(start: params.base + e.offset, count: e.count))
        }
        if includeEMA {
            for e in layout.entries(in: [.image]) {
                w.add("ema/" + e.name, shape: e.shape, floats: UnsafeBufferPointer(start: ema.base + (e.offset - emaShift), count: e.count))
            }
        }
    }
}
