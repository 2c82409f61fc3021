/// Eval reports as text: one log line, or a Markdown table.
public enum EvalTable {
    /// `R@1 i2t short_en 0.42 long_en 0.61 … | zero-shot 0.31 | held-out 0.25 | drift 0.98`.
    public static func line(_ r: EvalReport) -> String {
        let v = r.variants.keys.sorted().map { "\($0) \(fixed(r.variants[$0]!.i2t_r1, 3))" }.joined(separator: " ")
        var s = "\(r.model)\(r.phase.map { " [\($0)]" } ?? ""): i2t R@1 \(v)"
        if let z = r.zeroshot_top1 { s += " | zero-shot \(fixed(z, 3))" }
        if let h = r.heldout_top1 { s += " | held-out \(fixed(h, 3))" }
        return s + " | drift cos \(fixed(r.image_drift_cos, 4))"
    }

    /// A Markdown table: one row per (label, report), recall@1 both ways per variant, zero-shot,
    /// held-out and drift.
    public static func markdown(_ rows: [(String, EvalReport)], variants: [String], bothDirections: Bool = true) -> String {
        var head = "| model |"
        var rule = "|---|"
        for v in variants {
            head += bothDirections ? " \(v) i2t R@1 | \(v) t2i R@1 |" : " \(v) R@1 |"
            rule += bothDirections ? "---:|---:|" : "---:|"
        }
        head += " zero-shot top-1 | held-out top-1 | image drift (cos) |"
        rule += "---:|---:|---:|"
        var out = head + "\n" + rule + "\n"
        for (label, r) in rows {
            var line = "| \(label) |"
            for v in variants {
                if let s = r.variants[v] {
                    line += bothDirections ? " \(fixed(s.i2t_r1, 3)) | \(fixed(s.t2i_r1, 3)) |" : " \(fixed(s.i2t_r1, 3)) |"
                } else {
                    line += bothDirections ? " – | – |" : " – |"
                }
            }
            line += " \(r.zeroshot_top1.map { fixed($0, 3) } ?? "–") |"
            line += " \(r.heldout_top1.map { fixed($0, 3) } ?? "–") |"
            line += " \(fixed(r.image_drift_cos, 4)) |"
            out += line + "\n"
        }
        return out
    }
}
