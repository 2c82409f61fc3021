import Tensors

/// Instance semantic alignment, `L_ins(a, b) = Σ_i ‖a_i − b_i‖²` (reduction sum, as the official
/// `mse_loss(..., reduction="sum")`).
public enum InstanceLoss {
    /// Returns the loss over `rows` of a (B, E) and b (B, E), and adds `weight · ∂L/∂a` to da (B, E)
    /// (only `rows` of it). `b` is a teacher: no gradient.
    public static func apply(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, dim: Int, rows: Range<Int>,
        weight: Float, da: UnsafeMutablePointer<Float>
    ) -> Double {
        var total = 0.0
        for i in rows {
            let x = a + i * dim, y = b + i * dim, g = da + i * dim
            var s: Float = 0
            for k in 0..<dim {
                let d = x[k] - y[k]
                s += d * d
                g[k] += 2 * weight * d
            }
            total += Double(s)
        }
        return total
    }
}
