import Model
import Tensors
import XCTest

/// Finite-difference checks of every layer's backward on random inputs of several shapes.
/// Each objective is f = Σ w ⊙ out for a fixed random w, accumulated in float64.
final class LayerGradientTests: XCTestCase {
    func objective(_ out: UnsafePointer<Float>, _ w: [Float]) -> Double {
        var s = 0.0
        for i in w.indices { s += Double(out[i]) * Double(w[i]) }
        return s
    }

    func testLayerNorm() {
        for (n, c) in [(1, 1), (1, 8), (3, 5), (4, 17)] {
            var rng = SplitMix64(seed: UInt64(n * 100 + c))
            let x = Slab(randomFloats(n * c, &rng, scale: 2)), g = Slab(randomFloats(c, &rng)), b = Slab(randomFloats(c, &rng))
            let w = randomFloats(n * c, &rng)
            let out = Slab(count: n * c), mean = Slab(count: n), rstd = Slab(count: n)
            let f = { () -> Double in
                LayerNorm.forward(out: out.base, mean: mean.base, rstd: rstd.base, inp: x.base, weight: g.base, bias: b.base, rows: n, cols: c)
                return self.objective(out.base, w)
            }
            _ = f()
            let dout = Slab(w), dx = Slab(count: n * c), dg = Slab(count: c), db = Slab(count: c)
            LayerNorm.backward(dinp: dx.base, dweight: dg.base, dbias: db.base, dout: dout.base, inp: x.base, weight: g.base,
                               mean: mean.base, rstd: rstd.base, rows: n, cols: c)
            if c > 1 { checkDirectionalDerivative("LayerNorm x (\(n),\(c))", x: x.base, count: n * c, grad: dx.toArray(), h: 1e-3, f: f) }
            checkDirectionalDerivative("LayerNorm weight (\(n),\(c))", x: g.base, count: c, grad: dg.toArray(), f: f)
            checkDirectionalDerivative("LayerNorm bias (\(n),\(c))", x: b.base, count: c, grad: db.toArray(), f: f)
        }
    }

    func testLayerNormAccumulatesIntoInputGradient() {
        let n = 2, c = 6
        var rng = SplitMix64(seed: 5)
        let x = Slab(randomFloats(n * c, &rng)), g = Slab(randomFloats(c, &rng)), b = Slab(randomFloats(c, &rng))
        let out = Slab(count: n * c), mean = Slab(count: n), rstd = Slab(count: n)
        LayerNorm.forward(out: out.base, mean: mean.base, rstd: rstd.base, inp: x.base, weight: g.base, bias: b.base, rows: n, cols: c)
        let dout = Slab(randomFloats(n * c, &rng))
        let fresh = Slab(count: n * c), acc = Slab([Float](repeating: 1, count: n * c))
        let dg = Slab(count: c), db = Slab(count: c)
        for target in [fresh, acc] {
            LayerNorm.backward(dinp: target.base, dweight: dg.base, dbias: db.base, dout: dout.base, inp: x.base, weight: g.base,
                               mean: mean.base, rstd: rstd.base, rows: n, cols: c)
        }
        assertClose(acc.toArray(), fresh.toArray().map { $0 + 1 }, rtol: 1e-6, "dinp accumulates")
    }

    func testGELU() {
        for (n, c) in [(1, 1), (2, 7), (5, 16)] {
            var rng = SplitMix64(seed: UInt64(7 * n + c))
            let hIn = randomFloats(n * c, &rng, scale: 3)
            let bias = Slab(randomFloats(c, &rng))
            let h = Slab(count: n * c), out = Slab(count: n * c), cdf = Slab(count: n * c)
            let x = Slab(hIn)
            let w = randomFloats(n * c, &rng)
            let f = { () -> Double in
                h.base.update(from: x.base, count: n * c)
                GELU.biasForward(out: out.base, cdf: cdf.base, h: h.base, bias: bias.base, rows: n, cols: c)
                return self.objective(out.base, w)
            }
            _ = f()
            let d = Slab(w), db = Slab(count: c)
            GELU.backward(d: d.base, dbias: db.base, h: h.base, cdf: cdf.base, rows: n, cols: c)
            checkDirectionalDerivative("GELU input (\(n),\(c))", x: x.base, count: n * c, grad: d.toArray(), h: 1e-3, f: f)
            checkDirectionalDerivative("GELU bias (\(n),\(c))", x: bias.base, count: c, grad: db.toArray(), h: 1e-3, f: f)
        }
        // Exact (erf) form, not the tanh approximation: gelu(1) = Φ(1) = 0.8413447.
        let h = Slab([1, -1]), out = Slab(count: 2), zero = Slab(count: 1), cdf = Slab(count: 2)
        GELU.biasForward(out: out.base, cdf: cdf.base, h: h.base, bias: zero.base, rows: 2, cols: 1)
        XCTAssertEqual(out.base[0], 0.841_344_7, accuracy: 1e-6)
        XCTAssertEqual(out.base[1], -0.158_655_3, accuracy: 1e-6)
    }

    func testLinear() {
        for (n, i, o) in [(1, 1, 1), (3, 4, 5), (6, 9, 2)] {
            var rng = SplitMix64(seed: UInt64(n + 10 * i + 100 * o))
            let x = Slab(randomFloats(n * i, &rng)), wt = Slab(randomFloats(o * i, &rng)), b = Slab(randomFloats(o, &rng))
            let out = Slab(count: n * o)
            let w = randomFloats(n * o, &rng)
            let f = { () -> Double in
                Linear.forward(out: out.base, inp: x.base, weight: wt.base, bias: b.base, rows: n, inFeatures: i, outFeatures: o)
                return self.objective(out.base, w)
            }
            _ = f()
            let dout = Slab(w), dx = Slab(count: n * i), dw = Slab(count: o * i), db = Slab(count: o)
            Linear.backward(dinp: dx.base, dweight: dw.base, dbias: db.base, dout: dout.base, inp: x.base, weight: wt.base,
                            rows: n, inFeatures: i, outFeatures: o)
            checkDirectionalDerivative("Linear x", x: x.base, count: n * i, grad: dx.toArray(), f: f)
            checkDirectionalDerivative("Linear weight", x: wt.base, count: o * i, grad: dw.toArray(), f: f)
            checkDirectionalDerivative("Linear bias", x: b.base, count: o, grad: db.toArray(), f: f)
        }
    }

    func testL2Normalize() {
        for (n, c) in [(1, 1), (1, 3), (4, 6)] {
            var rng = SplitMix64(seed: UInt64(3 * n + c))
            let x = Slab(randomFloats(n * c, &rng).map { $0 + 0.5 })
            let out = Slab(count: n * c), norm = Slab(count: n)
            let w = randomFloats(n * c, &rng)
            let f = { () -> Double in
                L2Normalize.forward(out: out.base, norm: norm.base, inp: x.base, rows: n, cols: c)
                return self.objective(out.base, w)
            }
            _ = f()
            let dout = Slab(w), dx = Slab(count: n * c)
            L2Normalize.backward(dinp: dx.base, dout: dout.base, out: out.base, norm: norm.base, rows: n, cols: c)
            checkDirectionalDerivative("L2Normalize (\(n),\(c))", x: x.base, count: n * c, grad: dx.toArray(), h: 1e-3, f: f)
        }
    }

    func testResidualBlock() {
        for (n, d, h) in [(1, 3, 6), (4, 5, 10), (3, 8, 8)] {
            let shape = ModelShape(dLLM: d, dEmbed: 2, textBlocks: 1, textExpansion: h / d, imageBlocks: 1, imageExpansion: 1)
            let layout = ParameterLayout(shape)
            var rng = SplitMix64(seed: UInt64(n * d * h))
            let params = Slab(randomFloats(layout.count, &rng, scale: 0.5))
            let grads = Slab(count: layout.count)
            let o = layout.textBlocks[0]
            let x = Slab(randomFloats(n * d, &rng)), out = Slab(count: n * d)
            let scratch = Slab(count: BlockSaved.floats(rows: n, dim: d, hidden: h))
            let saved = BlockSaved(in: scratch, rows: n, dim: d, hidden: h)
            let w = randomFloats(n * d, &rng)
            let f = { () -> Double in
                ResidualBlock.forward(xOut: out.base, saved: saved, xIn: x.base, w: BlockView(o, in: params.base), rows: n)
                return self.objective(out.base, w)
            }
            _ = f()
            let dx = Slab(w), dh = Slab(count: n * h), dln = Slab(count: n * d)
            ResidualBlock.backward(dx: dx.base, g: BlockView(o, in: grads.base), saved: saved, xIn: x.base,
                                   w: BlockView(o, in: params.base), rows: n, dh: dh.base, dln: dln.base, needInputGrad: true)
            checkDirectionalDerivative("block x (\(n),\(d),\(h))", x: x.base, count: n * d, grad: dx.toArray(), h: 1e-3, f: f)
            let blockRange = o.lnWeight..<(o.b2 + d)
            checkDirectionalDerivative("block params (\(n),\(d),\(h))", x: params.base + blockRange.lowerBound, count: blockRange.count,
                                       grad: Array(grads.buffer[blockRange]), h: 1e-3, f: f)
        }
    }
}
