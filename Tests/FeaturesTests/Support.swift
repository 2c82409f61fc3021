import XCTest
@testable import Features
import Tensors
import Basics
#if canImport(Glibc)
import Glibc
#endif

/// A small dataset whose every value is known: element j of row g (global index), variant v of
/// array a is `value(a, g, v, j)`; exact in float16 too.
enum Known {
    static let dEmbed = 4, dLLM = 6
    static let variants = ["short_en", "long_en", "long_de"]

    static func value(_ array: Int, _ row: Int, _ variant: Int, _ j: Int) -> Float {
        Float(array * 100 + row * 8 + variant * 2) + Float(j) * 0.25
    }

    /// Values stay below 512, where float16 steps by 0.25, so they are exact in float16 (≤ 12 rows).
    /// Writes shards of `rows` (train, train, eval by default) with known values.
    @discardableResult
    static func write(_ dir: String, rows: [Int] = [5, 3, 4], splits: [Split] = [.train, .train, .eval],
                      dtype: NpyDType = .float32, captions: Bool = true) throws -> Manifest {
        let v = variants.count
        return try DatasetWriter.create(at: dir, dtype: dtype, dEmbed: dEmbed, dLLM: dLLM, variants: variants,
                                        description: "test data") { w in
            var start = 0
            for (s, n) in rows.enumerated() {
                var image = [Float](), clip = [Float](), llm = [Float]()
                for r in 0..<n {
                    let g = start + r
                    image += (0..<dEmbed).map { value(0, g, 0, $0) }
                    for k in 0..<v {
                        clip += (0..<dEmbed).map { value(1, g, k, $0) }
                        llm += (0..<dLLM).map { value(2, g, k, $0) }
                    }
                }
                let caps = captions ? (0..<n).map { r in
                    "{\"captions\": {" + variants.map { "\"\($0)\": \"row \(start + r)\"" }.joined(separator: ", ") + "}}"
                } : nil
                try image.withUnsafeBufferPointer { i in
                    try clip.withUnsafeBufferPointer { c in
                        try llm.withUnsafeBufferPointer { l in
                            try w.addShard(name: "shard-\(s)", split: splits[s], rows: n, image: i, clipText: c, llm: l,
                                           concepts: (ids: (0..<n).flatMap { [Int32(start + $0), -1] }, width: 2), captions: caps)
                        }
                    }
                }
                start += n
            }
        }
    }
}

/// Every file under `dir` (relative path → bytes), for byte-identity checks.
func treeContents(_ dir: String) throws -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    let fm = FileManager.default
    for rel in try fm.subpathsOfDirectory(atPath: dir).sorted() {
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: "\(dir)/\(rel)", isDirectory: &isDir), !isDir.boolValue {
            out[rel] = try Files.read("\(dir)/\(rel)")
        }
    }
    return out
}

/// Cosine similarity of two float rows.
func cosine(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
    var ab = 0.0, aa = 0.0, bb = 0.0
    for i in 0..<n {
        ab += Double(a[i]) * Double(b[i]); aa += Double(a[i]) * Double(a[i]); bb += Double(b[i]) * Double(b[i])
    }
    return ab / (aa * bb).squareRoot()
}
