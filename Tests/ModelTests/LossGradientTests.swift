import Model
import Tensors
import XCTest

/// Finite-difference checks of the losses, over shapes that include B not divisible by G, B = 1
/// and duplicated rows (coincident points), plus the ownership split.
final class LossGradientTests: XCTestCase {
    func unitRows(_ n: Int, _ d: Int, _ rng: inout SplitMix64) -> [Float] {
        var x = randomFloats(n * d, &rng)
        for i in 0..<n {
            let norm = (0..<d).reduce(0.0) { $0 + Double(x[i * d + $1] * x[i * d + $1]) }.squareRoot()
            for k in 0..<d { x[i * d + k] = Float(Double(x[i * d + k]) / norm) }
        }
        return x
    }

    func testInstance() {
        for (b, d) in [(1, 3), (5, 4)] {
            var rng = SplitMix64(seed: UInt64(b * 10 + d))
            let a = Slab(randomFloats(b * d, &rng)), t = Slab(randomFloats(b * d, &rng))
            let da = Slab(count: b * d)
            let f = { () -> Double in
                let scratch = Slab(count: b * d)
                return InstanceLoss.apply(a: a.base, b: t.base, dim: d, rows: 0..<b, weight: 0.7, da: scratch.base) * 0.7
            }
            _ = InstanceLoss.apply(a: a.base, b: t.base, dim: d, rows: 0..<b, weight: 0.7, da: da.base)
            checkDirectionalDerivative("instance (\(b),\(d))", x: a.base, count: b * d, grad: da.toArray(), f: f)
        }
    }

    func testStructure() {
        // (B, E, G, duplicate rows)
        for (b, d, g, dup) in [(1, 3, 4, false), (7, 4, 3, false), (10, 5, 4, true), (6, 3, 6, true), (9, 6, 20, false)] {
            var rng = SplitMix64(seed: UInt64(b * 100 + d * 10 + g))
            var av = unitRows(b, d, &rng)
            var bv = unitRows(b, d, &rng)
            if dup {
                for k in 0..<d { av[4 % b * d + k] = av[3 % b * d + k]; bv[4 % b * d + k] = bv[3 % b * d + k] }
            }
            let a = Slab(av), t = Slab(bv)
            let groups = 0..<StructureLoss.groupCount(batch: b, group: g)
            let scratch = Slab(count: StructureLoss.scratchFloats(group: g))
            let da = Slab(count: b * d)
            let loss = StructureLoss.apply(a: a.base, b: t.base, batch: b, dim: d, group: g, groups: groups, weight: 1.5, da: da.base, scratch: scratch.base)
            XCTAssertTrue(loss.isFinite)
            XCTAssertTrue(da.toArray().allSatisfy(\.isFinite), "coincident points must give a finite gradient")
            let f = { () -> Double in
                let sink = Slab(count: b * d)
                return 1.5 * StructureLoss.apply(a: a.base, b: t.base, batch: b, dim: d, group: g, groups: groups, weight: 1.5, da: sink.base, scratch: scratch.base)
            }
            checkDirectionalDerivative("structure B=\(b) E=\(d) G=\(g) dup=\(dup)", x: a.base, count: b * d, grad: da.toArray(), h: 1e-3, f: f)
            if b == 1 { XCTAssertEqual(loss, 0, "one row has no pairs") }
        }
    }

    /// Against a direct double-precision evaluation of the definition, including a pair closer
    /// than the Gram-matrix form can resolve.
    func testStructureMatchesDefinition() {
        let b = 7, d = 5, g = 4
        var rng = SplitMix64(seed: 42)
        var av = unitRows(b, d, &rng)
        let bv = unitRows(b, d, &rng)
        for k in 0..<d { av[2 * d + k] = av[1 * d + k] + (k == 0 ? 1e-4 : 0) }  // nearly coincident pair
        var want = 0.0
        for g0 in stride(from: 0, to: b, by: g) {
            for i in g0..<min(g0 + g, b) {
                for j in (i + 1)..<min(g0 + g, b) {
                    let da = (0..<d).reduce(0.0) { $0 + pow(Double(av[i * d + $1]) - Double(av[j * d + $1]), 2) }.squareRoot()
                    let db = (0..<d).reduce(0.0) { $0 + pow(Double(bv[i * d + $1]) - Double(bv[j * d + $1]), 2) }.squareRoot()
                    let delta = da - db
                    want += abs(delta) < 1 ? 0.5 * delta * delta : abs(delta) - 0.5
                }
            }
        }
        let a = Slab(av), t = Slab(bv), da = Slab(count: b * d), scratch = Slab(count: StructureLoss.scratchFloats(group: g))
        let got = StructureLoss.apply(a: a.base, b: t.base, batch: b, dim: d, group: g, groups: 0..<2, weight: 1, da: da.base, scratch: scratch.base)
        assertClose(got, want, rtol: 1e-6, "structure loss")
    }

    func testContrastive() {
        for (b, d) in [(1, 3), (2, 4), (7, 5)] {
            var rng = SplitMix64(seed: UInt64(b * 31 + d))
            let u = Slab(unitRows(b, d, &rng)), t = Slab(unitRows(b, d, &rng))
            let logScale = Slab([Float(2.0)])
            let scratch = Slab(count: ContrastiveLoss.scratchFloats(rows: b, batch: b))
            let du = Slab(count: b * d), dt = Slab(count: b * d)
            let (loss, dls) = ContrastiveLoss.apply(u: u.base, t: t.base, batch: b, dim: d, logScale: logScale.base[0], rows: 0..<b,
                                                    du: du.base, dt: dt.base, scratch: scratch.base)
            XCTAssertTrue(loss >= 0)
            let f = { () -> Double in
                let a = Slab(count: b * d), c = Slab(count: b * d)
                return ContrastiveLoss.apply(u: u.base, t: t.base, batch: b, dim: d, logScale: logScale.base[0], rows: 0..<b,
                                             du: a.base, dt: c.base, scratch: scratch.base).loss
            }
            checkDirectionalDerivative("contrastive u B=\(b)", x: u.base, count: b * d, grad: du.toArray(), h: 1e-3, f: f)
            checkDirectionalDerivative("contrastive t B=\(b)", x: t.base, count: b * d, grad: dt.toArray(), h: 1e-3, f: f)
            checkDirectionalDerivative("contrastive log s B=\(b)", x: logScale.base, count: 1, grad: [Float(dls)], h: 1e-3, f: f)
            if b == 1 { XCTAssertEqual(loss, 0, accuracy: 1e-7, "a batch of one has no negatives") }
        }
    }

    /// Owners' terms and gradients add up to the whole batch's, for owned rows split any way.
    func testContrastiveOwnedRowsAddUp() {
        let b = 9, d = 4
        var rng = SplitMix64(seed: 8)
        let u = Slab(unitRows(b, d, &rng)), t = Slab(unitRows(b, d, &rng))
        func run(_ rows: Range<Int>, _ du: Slab, _ dt: Slab) -> (Double, Double) {
            let scratch = Slab(count: ContrastiveLoss.scratchFloats(rows: rows.count, batch: b))
            return ContrastiveLoss.apply(u: u.base, t: t.base, batch: b, dim: d, logScale: 1.3, rows: rows, du: du.base, dt: dt.base, scratch: scratch.base)
        }
        let du = Slab(count: b * d), dt = Slab(count: b * d)
        let whole = run(0..<b, du, dt)
        let du2 = Slab(count: b * d), dt2 = Slab(count: b * d)
        var loss = 0.0, dls = 0.0
        for r in [0..<2, 2..<2, 2..<7, 7..<9] {
            let (l, s) = run(r, du2, dt2)
            loss += l
            dls += s
        }
        assertClose(loss, whole.0, rtol: 1e-6, "loss")
        assertClose(dls, whole.1, rtol: 1e-5, "d log s")
        assertClose(du2.toArray(), du.toArray(), rtol: 1e-6, "du")
        assertClose(dt2.toArray(), dt.toArray(), rtol: 1e-6, "dt")
    }
}
