import Model
import Tensors
import XCTest

/// Finite-difference checks of the losses (float64, like the loss side), over shapes that include
/// B not divisible by G, B = 1 and duplicated rows (coincident points), and checks that owners'
/// parts add up to the whole batch's — exactly, since each row's gradient has one owner.
final class LossGradientTests: XCTestCase {
    func unitRows(_ n: Int, _ d: Int, _ rng: inout SplitMix64) -> [Double] {
        var x = (0..<(n * d)).map { _ in rng.normal() }
        for i in 0..<n {
            let norm = (0..<d).reduce(0.0) { $0 + x[i * d + $1] * x[i * d + $1] }.squareRoot()
            for k in 0..<d { x[i * d + k] /= norm }
        }
        return x
    }

    /// The structure loss split among owners of `split` row ranges: summed loss, gradient (B, E).
    func structure(_ a: Slab64, _ b: Slab64, batch: Int, dim: Int, group: Int, weight: Double, split: [Range<Int>]) -> (Double, [Double]) {
        var total = 0.0
        var grad = [Double](repeating: 0, count: batch * dim)
        for rows in split {
            let da = Slab64(count: max(rows.count, 1) * dim)
            let scratch = Slab64(count: StructureLoss.scratchCount(group: group, rows: rows.count))
            total += StructureLoss.apply(a: a.base, b: b.base, batch: batch, dim: dim, group: group, rows: rows,
                                         weight: weight, da: da.base, scratch: scratch.base)
            for k in 0..<(rows.count * dim) { grad[rows.lowerBound * dim + k] += da.base[k] }
        }
        return (total, grad)
    }

    /// The contrastive loss split among owners, with the log-sum-exp exchange between passes.
    func contrastive(_ u: Slab64, _ t: Slab64, batch: Int, dim: Int, logScale: Double, split: [Range<Int>])
        -> (loss: Double, dls: Double, du: [Double], dt: [Double]) {
        let scratches = split.map { Slab64(count: max(1, ContrastiveLoss.scratchCount(rows: $0.count, batch: batch))) }
        let lse = Slab64(count: 2 * batch)
        for (rows, scratch) in zip(split, scratches) {
            let own = Slab64(count: 2 * max(rows.count, 1))
            ContrastiveLoss.logits(u: u.base, t: t.base, batch: batch, dim: dim, logScale: logScale, rows: rows,
                                   lse: own.base, scratch: scratch.base)
            for r in 0..<rows.count {
                lse.base[rows.lowerBound + r] = own.base[r]
                lse.base[batch + rows.lowerBound + r] = own.base[rows.count + r]
            }
        }
        var loss = 0.0, dls = 0.0
        var du = [Double](repeating: 0, count: batch * dim), dt = du
        for (rows, scratch) in zip(split, scratches) {
            let a = Slab64(count: max(rows.count, 1) * dim), c = Slab64(count: max(rows.count, 1) * dim)
            let (l, s) = ContrastiveLoss.apply(u: u.base, t: t.base, batch: batch, dim: dim, logScale: logScale, rows: rows,
                                               lseM: lse.base, lseMT: lse.base + batch, du: a.base, dt: c.base, scratch: scratch.base)
            loss += l
            dls += s
            for k in 0..<(rows.count * dim) {
                du[rows.lowerBound * dim + k] = a.base[k]
                dt[rows.lowerBound * dim + k] = c.base[k]
            }
        }
        return (loss, dls, du, dt)
    }

    func testInstance() {
        for (b, d) in [(1, 3), (5, 4)] {
            var rng = SplitMix64(seed: UInt64(b * 10 + d))
            let a = Slab64((0..<(b * d)).map { _ in rng.normal() }), t = Slab64((0..<(b * d)).map { _ in rng.normal() })
            let da = Slab64(count: b * d)
            _ = InstanceLoss.apply(a: a.base, b: t.base, rows: b, dim: d, weight: 0.7, da: da.base)
            let f = { () -> Double in
                let sink = Slab64(count: b * d)
                return InstanceLoss.apply(a: a.base, b: t.base, rows: b, dim: d, weight: 0.7, da: sink.base) * 0.7
            }
            checkDirectionalDerivative64("instance (\(b),\(d))", x: a.base, count: b * d, grad: da.toArray(), f: f)
        }
    }

    func testStructure() {
        // (B, E, G, duplicate rows)
        for (b, d, g, dup) in [(1, 3, 4, false), (7, 4, 3, false), (10, 5, 4, true), (6, 3, 6, true), (9, 6, 20, false)] {
            var rng = SplitMix64(seed: UInt64(b * 100 + d * 10 + g))
            var av = unitRows(b, d, &rng)
            var bv = unitRows(b, d, &rng)
            if dup && b > 4 {
                for k in 0..<d { av[4 * d + k] = av[3 * d + k]; bv[4 * d + k] = bv[3 * d + k] }
            }
            let a = Slab64(av), t = Slab64(bv)
            let (loss, grad) = structure(a, t, batch: b, dim: d, group: g, weight: 1.5, split: [0..<b])
            XCTAssertTrue(loss.isFinite)
            XCTAssertTrue(grad.allSatisfy(\.isFinite), "coincident points must give a finite gradient")
            let f = { () -> Double in 1.5 * self.structure(a, t, batch: b, dim: d, group: g, weight: 1.5, split: [0..<b]).0 }
            checkDirectionalDerivative64("structure B=\(b) E=\(d) G=\(g) dup=\(dup)", x: a.base, count: b * d, grad: grad, f: f)
            if b == 1 { XCTAssertEqual(loss, 0, "one row has no pairs") }
        }
    }

    /// Against a direct evaluation of the definition, including a pair closer than the
    /// Gram-matrix form can resolve.
    func testStructureMatchesDefinition() {
        let b = 7, d = 5, g = 4
        var rng = SplitMix64(seed: 42)
        var av = unitRows(b, d, &rng)
        let bv = unitRows(b, d, &rng)
        for k in 0..<d { av[2 * d + k] = av[1 * d + k] + (k == 0 ? 1e-7 : 0) }  // nearly coincident pair
        var want = 0.0
        for g0 in stride(from: 0, to: b, by: g) {
            for i in g0..<min(g0 + g, b) {
                for j in (i + 1)..<min(g0 + g, b) {
                    let da = (0..<d).reduce(0.0) { $0 + pow(av[i * d + $1] - av[j * d + $1], 2) }.squareRoot()
                    let db = (0..<d).reduce(0.0) { $0 + pow(bv[i * d + $1] - bv[j * d + $1], 2) }.squareRoot()
                    let delta = da - db
                    want += abs(delta) < 1 ? 0.5 * delta * delta : abs(delta) - 0.5
                }
            }
        }
        let (got, _) = structure(Slab64(av), Slab64(bv), batch: b, dim: d, group: g, weight: 1, split: [0..<b])
        assertClose(got, want, rtol: 1e-12, "structure loss")
    }

    /// Owners' parts add up to the whole batch's loss and gradient however the rows are split
    /// (splits that cut through groups, and empty owners).
    func testStructureOwnedRowsAddUp() {
        let b = 11, d = 4, g = 4
        var rng = SplitMix64(seed: 17)
        let a = Slab64(unitRows(b, d, &rng)), t = Slab64(unitRows(b, d, &rng))
        let (whole, wholeGrad) = structure(a, t, batch: b, dim: d, group: g, weight: 0.9, split: [0..<b])
        for split in [[0..<3, 3..<3, 3..<9, 9..<11], [0..<5, 5..<11], [0..<1, 1..<2, 2..<10, 10..<11]] {
            let (loss, grad) = structure(a, t, batch: b, dim: d, group: g, weight: 0.9, split: split)
            assertClose(loss, whole, rtol: 1e-12, "loss \(split)")
            assertClose(grad, wholeGrad, rtol: 1e-12, "gradient \(split)")
        }
    }

    func testContrastive() {
        for (b, d) in [(1, 3), (2, 4), (7, 5)] {
            var rng = SplitMix64(seed: UInt64(b * 31 + d))
            let u = Slab64(unitRows(b, d, &rng)), t = Slab64(unitRows(b, d, &rng))
            let logScale = Slab64([2.0])
            let r = contrastive(u, t, batch: b, dim: d, logScale: logScale.base[0], split: [0..<b])
            XCTAssertTrue(r.loss >= 0)
            let f = { () -> Double in self.contrastive(u, t, batch: b, dim: d, logScale: logScale.base[0], split: [0..<b]).loss }
            checkDirectionalDerivative64("contrastive u B=\(b)", x: u.base, count: b * d, grad: r.du, f: f)
            checkDirectionalDerivative64("contrastive t B=\(b)", x: t.base, count: b * d, grad: r.dt, f: f)
            checkDirectionalDerivative64("contrastive log s B=\(b)", x: logScale.base, count: 1, grad: [r.dls], f: f)
            if b == 1 { XCTAssertEqual(r.loss, 0, accuracy: 1e-12, "a batch of one has no negatives") }
        }
    }

    /// Owners' terms and gradients add up to the whole batch's, for owned rows split any way.
    func testContrastiveOwnedRowsAddUp() {
        let b = 9, d = 12
        var rng = SplitMix64(seed: 8)
        let u = Slab64(unitRows(b, d, &rng)), t = Slab64(unitRows(b, d, &rng))
        let whole = contrastive(u, t, batch: b, dim: d, logScale: 2.3, split: [0..<b])
        for split in [[0..<2, 2..<2, 2..<7, 7..<9], [0..<3, 3..<6, 6..<9], [0..<1, 1..<9]] {
            let parts = contrastive(u, t, batch: b, dim: d, logScale: 2.3, split: split)
            assertClose(parts.loss, whole.loss, rtol: 1e-12, "loss")
            assertClose(parts.dls, whole.dls, rtol: 1e-12, "d log s")
            assertClose(parts.du, whole.du, rtol: 1e-12, "du")
            assertClose(parts.dt, whole.dt, rtol: 1e-12, "dt")
        }
    }
}
