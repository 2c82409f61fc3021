import Basics
import Foundation
import Model
import Tensors
import XCTest

/// The numeric core against the golden fixtures (PyTorch, float64, the official formulas):
/// losses and features ≤ 1e-5, gradients ‖a−b‖/‖b‖ ≤ 1e-4, state after one AdamW step ≤ 1e-5.
/// A missing fixture fails the test.
final class FixtureTests: XCTestCase {
    struct Fixture {
        let file: SafeTensors
        let settings: [String: Any]
        let shape: ModelShape
        let loss: LossSettings
        let batch: Int
    }

    func load(_ name: String) throws -> Fixture {
        let path = "\(fixturesDirectory)/\(name).safetensors"
        guard FileManager.default.fileExists(atPath: path) else {
            throw FileError(path, "golden fixture is missing: the reference check cannot run")
        }
        let file = try SafeTensors(path: path)
        let json = try XCTUnwrap(file.metadata["settings"])
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let shape = ModelShape(dLLM: s["d_llm"] as! Int, dEmbed: s["d_embed"] as! Int, textBlocks: s["blocks"] as! Int,
                               textExpansion: s["expansion"] as! Int, imageBlocks: 1, imageExpansion: s["expansion"] as! Int)
        let kind = PhaseKind(rawValue: s["phase"] as! String)!
        let loss = LossSettings(kind: kind, insVariants: s["ins_variants"] as! [Int], strVariants: s["str_variants"] as! [Int],
                                wIns: Float(s["w_ins"] as! Double), wStr: Float(s["w_str"] as! Double),
                                group: s["group"] as! Int, lambda: Float(s["lambda"] as! Double),
                                contrastVariants: Array(0..<(s["variants"] as! Int)))
        return Fixture(file: file, settings: s, shape: shape, loss: loss, batch: s["batch"] as! Int)
    }

    /// Runs the step on the fixture's batch with `workers` simulated owners.
    func run(_ fx: Fixture, workers: Int = 1) throws -> (ParameterStore, LocalGroup, LossTerms) {
        let layout = ParameterLayout(fx.shape)
        let store = ParameterStore(layout: layout)
        try store.load(from: fx.file)
        let B = fx.batch, V = fx.settings["variants"] as! Int
        let arrays = BatchArrays(
            batch: B, variants: V,
            llm: try fx.file.floats("llm", shape: [B, V, fx.shape.dLLM]),
            clipText: try fx.file.floats("clip_text", shape: [B, V, fx.shape.dEmbed]),
            image: try fx.file.floats("image", shape: [B, fx.shape.dEmbed]),
            variant: try fx.file.int32s("variant", shape: [B]))
        let group = LocalGroup(layout: layout, settings: fx.loss, batch: B, workers: workers)
        for e in group.engines { arrays.fill(e) }
        let terms = group.step(store: store)
        return (store, group, terms)
    }

    func checkForwardBackward(_ name: String) throws {
        let fx = try load(name)
        let (store, group, terms) = try run(fx)
        for (term, value) in terms.named(fx.loss.kind) {
            let want = try fx.file.floats("loss/" + term)[0]
            assertClose(value, Double(want), rtol: 1e-5, "\(name) loss/\(term)")
        }
        let engine = group.engines[0]
        assertClose(Array(engine.globalFeatures(slot: 0)), try fx.file.floats("feature/text"), rtol: 1e-5, "\(name) feature/text")
        if fx.loss.kind == .contrast {
            assertClose(Array(engine.globalFeatures(slot: 1)), try fx.file.floats("feature/image"), rtol: 1e-5, "\(name) feature/image")
            assertClose(Array(engine.globalFeatures(slot: 2)), try fx.file.floats("feature/teacher"), rtol: 1e-5, "\(name) feature/teacher")
        }
        var checked = 0
        for e in store.layout.entries where fx.file.tensors["grad/" + e.name] != nil {
            assertClose(store.values(e, in: group.grads), try fx.file.floats("grad/" + e.name), rtol: 1e-4, "\(name) grad/\(e.name)")
            checked += 1
        }
        XCTAssertEqual(checked, store.layout.entries(in: engine.computedGroups).count, "\(name): every computed gradient has a reference")

        // One AdamW step from zero moments, the clamp and the EMA update.
        let opt = fx.settings["optimizer_step"] as! [String: Any]
        let betas = opt["betas"] as! [Double]
        let lr = opt["lr"] as! Double
        let settings = AdamWSettings(lr: [.text: lr, .image: lr, .scale: lr], beta1: betas[0], beta2: betas[1],
                                     eps: opt["eps"] as! Double, weightDecay: opt["weight_decay"] as! Double)
        AdamW.step(store: store, grads: group.grads.base, groups: engine.computedGroups, settings: settings,
                   t: 1, lrFactor: 1, emaAlpha: opt["ema_alpha"] as! Double, scratch: AdamWScratch(layout: store.layout))
        for e in store.layout.entries {
            assertClose(store.values(e, in: store.params), try fx.file.floats("after_step/param/" + e.name), rtol: 1e-5, "\(name) after_step/param/\(e.name)")
            if fx.file.tensors["after_step/exp_avg/" + e.name] != nil {
                assertClose(store.values(e, in: store.expAvg), try fx.file.floats("after_step/exp_avg/" + e.name), rtol: 1e-5, "\(name) exp_avg/\(e.name)")
                assertClose(store.values(e, in: store.expAvgSq), try fx.file.floats("after_step/exp_avg_sq/" + e.name), rtol: 1e-5, "\(name) exp_avg_sq/\(e.name)")
            }
        }
        for e in store.layout.entries(in: .image) {
            assertClose(store.values(e, in: store.ema, shift: store.emaShift), try fx.file.floats("after_step/ema/" + e.name), rtol: 1e-5, "\(name) after_step/ema/\(e.name)")
        }
    }

    func testInheritOneBlock() throws { try checkForwardBackward("inherit-L1") }
    func testInheritTwoBlocks() throws { try checkForwardBackward("inherit-L2") }
    func testContrast() throws { try checkForwardBackward("contrast-L1") }
    func testContrastLambdaOne() throws { try checkForwardBackward("contrast-L1-lambda1") }

    /// Splitting the fixture batch among 2, 3, 4 (and 10: one row each) owners changes nothing
    /// beyond float summation order.
    func testOwnersSumToTheWholeBatch() throws {
        for name in ["inherit-L2", "contrast-L1-lambda1"] {
            let fx = try load(name)
            let (_, one, t1) = try run(fx, workers: 1)
            for k in [2, 3, 4, 10] {
                let (store, many, tk) = try run(fx, workers: k)
                assertClose(tk.total, t1.total, rtol: 1e-6, "\(name) K=\(k) loss")
                for e in store.layout.entries(in: many.engines[0].computedGroups) {
                    assertClose(store.values(e, in: many.grads), store.values(e, in: one.grads), rtol: 1e-6, "\(name) K=\(k) grad/\(e.name)")
                }
            }
        }
    }
}
