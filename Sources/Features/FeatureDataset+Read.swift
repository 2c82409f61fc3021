#if canImport(Glibc)
import Glibc
#endif

/// The trainer's per-step reads: rows copied from the mapped shards into caller buffers, float16
/// widened to float32. Nothing here allocates; indices are global sample indices (`0..<count`),
/// variant indices point into `manifest.variants`.
extension FeatureDataset {
    /// Fills a batch for a set of variants (the inherit phase): for R = `rows.count` rows and
    /// K = `variants.count` variants,
    /// - `llm`: `(K, R, D_llm)` — `llm[(k * R + i) * D_llm ..< +D_llm]` is row `rows[i]`, variant `variants[k]`;
    /// - `clipText`: `(K, R, D_embed)`, the same layout;
    /// - `image`: `(R, D_embed)`.
    /// Pass nil for an output you do not need.
    public func read(rows: UnsafeBufferPointer<Int>, variants: UnsafeBufferPointer<Int>,
                     llm: UnsafeMutablePointer<Float>?, clipText: UnsafeMutablePointer<Float>?,
                     image: UnsafeMutablePointer<Float>?) {
        let v = variantCount, de = dEmbed, dl = dLLM, r = rows.count
        for k in 0..<variants.count {
            precondition(variants[k] >= 0 && variants[k] < v, "variant index \(variants[k]) outside 0..<\(v)")
        }
        // Plain index loops: no iterator or generic wrapper, so debug builds allocate nothing either.
        views.withUnsafeBufferPointer { views in
            for i in 0..<r {
                let (s, local) = locate(rows[i])
                let view = views[s]
                if let image {
                    copyRow(view.image, view.dtype, local * de, de, image + i * de)
                }
                for k in 0..<variants.count {
                    let variant = variants[k]
                    if let llm {
                        copyRow(view.llm, view.dtype, (local * v + variant) * dl, dl, llm + (k * r + i) * dl)
                    }
                    if let clipText {
                        copyRow(view.clipText, view.dtype, (local * v + variant) * de, de, clipText + (k * r + i) * de)
                    }
                }
            }
        }
    }

    /// Fills a batch with one variant per row (the contrast phase): row `rows[i]` with variant
    /// `variantPerRow[i]`;
    /// - `llm`: `(R, D_llm)`; `clipText`: `(R, D_embed)`; `image`: `(R, D_embed)`.
    /// `variantPerRow.count` must equal `rows.count`. Pass nil for an output you do not need.
    public func read(rows: UnsafeBufferPointer<Int>, variantPerRow: UnsafeBufferPointer<Int>,
                     llm: UnsafeMutablePointer<Float>?, clipText: UnsafeMutablePointer<Float>?,
                     image: UnsafeMutablePointer<Float>?) {
        precondition(variantPerRow.count == rows.count, "\(variantPerRow.count) variants for \(rows.count) rows")
        let v = variantCount, de = dEmbed, dl = dLLM
        views.withUnsafeBufferPointer { views in
            for i in 0..<rows.count {
                let (s, local) = locate(rows[i])
                let view = views[s]
                let variant = variantPerRow[i]
                precondition(variant >= 0 && variant < v, "variant index \(variant) outside 0..<\(v)")
                if let image { copyRow(view.image, view.dtype, local * de, de, image + i * de) }
                if let llm { copyRow(view.llm, view.dtype, (local * v + variant) * dl, dl, llm + i * dl) }
                if let clipText { copyRow(view.clipText, view.dtype, (local * v + variant) * de, de, clipText + i * de) }
            }
        }
    }

    /// `read(rows:variants:…)` for arrays (e.g. a sampler's slice); allocation-free.
    public func read(rows: ArraySlice<Int>, variants: [Int], llm: UnsafeMutablePointer<Float>?,
                     clipText: UnsafeMutablePointer<Float>?, image: UnsafeMutablePointer<Float>?) {
        rows.withUnsafeBufferPointer { r in
            variants.withUnsafeBufferPointer { k in read(rows: r, variants: k, llm: llm, clipText: clipText, image: image) }
        }
    }

    /// `read(rows:variantPerRow:…)` for arrays; allocation-free.
    public func read(rows: ArraySlice<Int>, variantPerRow: ArraySlice<Int>, llm: UnsafeMutablePointer<Float>?,
                     clipText: UnsafeMutablePointer<Float>?, image: UnsafeMutablePointer<Float>?) {
        rows.withUnsafeBufferPointer { r in
            variantPerRow.withUnsafeBufferPointer { k in read(rows: r, variantPerRow: k, llm: llm, clipText: clipText, image: image) }
        }
    }
}

/// Copies `count` elements from element `offset` of `base` (of `dtype`) to `dst` as float32.
@inline(__always)
func copyRow(_ base: UnsafeRawPointer, _ dtype: NpyDType, _ offset: Int, _ count: Int, _ dst: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .float32:
        memcpy(dst, base + offset * 4, count * 4)
    case .float16:
        let src = base + offset * 2
        for j in 0..<count {
            dst[j] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self))
        }
    case .int32:
        let src = base + offset * 4
        for j in 0..<count { dst[j] = Float(src.loadUnaligned(fromByteOffset: 4 * j, as: Int32.self)) }
    }
}

/// IEEE half → single, exact for every input (normals, subnormals, ±0, ±Inf, NaN payloads), written
/// with selects instead of branches so the row loop vectorises; `Float(Float16)` is a library call
/// per element on CPUs targeted without F16C, about 3× slower in `proclip bench data`. (F. Giesen's method.)
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let u = UInt32(h)
    let bits = (u & 0x7FFF) << 13           // exponent and mantissa in float position
    let exp = bits & (0x7C00 << 13)
    let normal = bits &+ ((127 - 15) << 23)  // rebias the exponent
    let special = normal &+ ((128 - 16) << 23)  // Inf/NaN: exponent all ones
    let tiny = Float(bitPattern: normal &+ (1 << 23)) - Float(bitPattern: 113 << 23)  // zero/subnormal: renormalise
    let magnitude = exp == (0x7C00 << 13) ? special : (exp == 0 ? tiny.bitPattern : normal)
    return Float(bitPattern: magnitude | ((u & 0x8000) << 16))
}
