import Basics
import Model
import Tensors

/// One tensor as a checkpoint holds it.
public struct CheckpointTensorInfo: Sendable, Equatable {
    /// The name in the file: `param/<name>`, `ema/<name>`, `exp_avg/<name>` or `exp_avg_sq/<name>`,
    /// with `<name>` the PyTorch name (`text.text_adaptor.0.fn.0.weight`, `logit_scale`, …).
    public let name: String
    /// The float32 tensor's shape (PyTorch's).
    public let shape: [Int]
    /// How the bytes are stored: `F32` with `shape`, or, byte-shuffled, `U8` with `[4] + shape`.
    public let storedDType: DType
    public let storedShape: [Int]
    /// Bytes in the data section.
    public let bytes: Int
}

/// The slab a checkpoint tensor comes from.
enum SlabKind: Int, CaseIterable {
    case params, ema, expAvg, expAvgSq

    /// The tensor-name prefix in the file.
    var prefix: String {
        switch self {
        case .params: return "param/"
        case .ema: return "ema/"
        case .expAvg: return "exp_avg/"
        case .expAvgSq: return "exp_avg_sq/"
        }
    }
}

/// One tensor of the plan: where it lives in the `ParameterStore` and in the data section.
struct PlannedTensor {
    let name: String
    let shape: [Int]
    let count: Int
    let slab: SlabKind
    /// Element offset in its slab (the EMA slab starts at the image group).
    let slabOffset: Int
    /// Byte offset in the data section.
    let dataOffset: Int
}

/// Every tensor of a checkpoint for one `ParameterLayout`, in file order: all parameters, the
/// image head's EMA teacher, then the two Adam moments — stored back to back without the
/// layout's alignment padding, so the data section is `4 × (2·P + P + E)` bytes.
struct CheckpointPlan {
    let layout: ParameterLayout
    let tensors: [PlannedTensor]
    /// Bytes of the data section.
    let dataBytes: Int
    /// Elements of the largest tensor.
    let largest: Int

    init(_ layout: ParameterLayout) {
        self.layout = layout
        var out: [PlannedTensor] = []
        var at = 0
        let emaShift = layout.range(of: .image).lowerBound
        for kind in SlabKind.allCases {
            let entries = kind == .ema ? layout.entries(in: [.image]) : layout.entries
            for e in entries {
                out.append(PlannedTensor(name: kind.prefix + e.name, shape: e.shape, count: e.count, slab: kind,
                                         slabOffset: kind == .ema ? e.offset - emaShift : e.offset, dataOffset: at))
                at += 4 * e.count
            }
        }
        tensors = out
        dataBytes = at
        largest = out.map(\.count).max() ?? 0
    }

    /// The stored dtype and shape of a tensor.
    static func stored(_ shape: [Int], shuffled: Bool) -> (DType, [Int]) {
        shuffled ? (.u8, [4] + shape) : (.f32, shape)
    }

    /// What the file holds for every tensor, in file order.
    func infos(shuffled: Bool) -> [CheckpointTensorInfo] {
        tensors.map {
            let (dt, sh) = CheckpointPlan.stored($0.shape, shuffled: shuffled)
            return CheckpointTensorInfo(name: $0.name, shape: $0.shape, storedDType: dt, storedShape: sh, bytes: 4 * $0.count)
        }
    }

    /// Everything before the data section (header length and JSON header).
    func header(metadata: [String: String], shuffled: Bool) -> [UInt8] {
        SafeTensorsWriter.header(tensors.map {
            let (dt, sh) = CheckpointPlan.stored($0.shape, shuffled: shuffled)
            return ($0.name, dt, sh)
        }, metadata: metadata)
    }

    /// Checks a parsed header against the plan: exactly the planned names, each with its stored
    /// dtype and shape, covering the data section without gaps. Returns the plan's tensors in
    /// the file's byte order, each with its byte range in the file.
    func match(_ found: [String: TensorInfo], shuffled: Bool, dataBytes: Int, source: String) throws -> [(PlannedTensor, Range<Int>)] {
        var out: [(PlannedTensor, Range<Int>)] = []
        out.reserveCapacity(tensors.count)
        for t in tensors {
            guard let f = found[t.name] else { throw FileError(source, "tensor '\(t.name)' is missing") }
            let (dt, sh) = CheckpointPlan.stored(t.shape, shuffled: shuffled)
            guard f.dtype == dt else {
                throw FileError(source, "tensor '\(t.name)': expected dtype \(dt.rawValue) (byte_shuffle \(shuffled)), got \(f.dtype.rawValue)")
            }
            guard f.shape == sh else { throw FileError(source, "tensor '\(t.name)': expected shape \(sh), got \(f.shape)") }
            out.append((t, f.range))
        }
        if found.count != tensors.count {
            let planned = Set(tensors.map(\.name))
            let extra = found.keys.filter { !planned.contains($0) }.sorted()
            throw FileError(source, "unexpected tensor '\(extra.first ?? "?")' (\(extra.count) not in the model's plan)")
        }
        out.sort { $0.1.lowerBound < $1.1.lowerBound }
        var at = 0
        for (t, r) in out {
            guard r.lowerBound == at else { throw FileError(source, "tensor '\(t.name)': data starts at byte \(r.lowerBound), expected \(at) (gap)") }
            at = r.upperBound
        }
        guard at == dataBytes else {
            throw FileError(source, "data section is \(dataBytes) bytes but the tensors cover \(at)")
        }
        return out
    }
}

extension ParameterStore {
    /// Start of tensor `t`'s values in this store.
    func pointer(_ t: PlannedTensor) -> UnsafeMutablePointer<Float> {
        switch t.slab {
        case .params: return params.base + t.slabOffset
        case .ema: return ema.base + t.slabOffset
        case .expAvg: return expAvg.base + t.slabOffset
        case .expAvgSq: return expAvgSq.base + t.slabOffset
        }
    }
}
