/// Instance semantic alignment, `L_ins(a, b) = Σ_i ‖a_i − b_i‖²` (reduction sum, as the official
/// `mse_loss(..., reduction="sum")`). Float64, like the rest of the loss side.
public enum InstanceLoss {
    /// Returns the loss over `rows` rows of a (rows, E) against the teacher b (rows, E) and adds
    /// `weight · ∂L/∂a` to da (rows, E). Each row's term is its own, so owners simply add up.
    public static func apply(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, rows: Int, dim: Int,
        weight: Double, da: UnsafeMutablePointer<Double>
    ) -> Double {
        var total = 0.0
        for i in 0..<(rows * dim) {
            let d = a[i] - b[i]
            total += d * d
            da[i] += 2 * weight * d
        }
        return total
    }
}
