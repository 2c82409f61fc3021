import ArgumentParser
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// `proclip bench step`: one full training step (forward, losses, backward, AdamW) at a given
/// batch, timed, beside the `cblas_sgemm` rate measured in the same run on the step's own GEMM
/// shapes — so the figure says how much of the machine's GEMM speed the whole step keeps.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Time one training step and compare it with sgemm on the step's own GEMM shapes.",
        discussion: """
            Presets: large = D_llm 2048, expansion 8, D_embed 1280; small = D_llm 1024, expansion 4, \
            D_embed 512; both with one text block and one image block (expansion 4). The inherit phase \
            runs instance and structure alignment on one caption variant (the image head is frozen); \
            the contrast phase adds the image head, its EMA teacher and the contrastive loss.
            """)

    @Option(help: "Presets to run: large, small, or all.") var preset: String = "all"
    @Option(help: "Global batch.") var batch: Int = 256
    @Option(help: "Phase to step: inherit or contrast.") var phase: PhaseKind = .inherit
    @Option(help: "Timed steps (after one warm-up step).") var steps: Int = 5
    @Option(help: "Threads for OpenBLAS and the element-wise kernels (default: all CPUs).") var threads: Int?
    @Flag(help: "One JSON object per preset instead of a table.") var json = false
    @Flag(help: "Also print the mean time of each stage of the step.") var breakdown = false

    func validate() throws {
        if !["large", "small", "all"].contains(preset) { throw ValidationError("--preset must be large, small or all") }
        if batch < 1 || steps < 1 { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        let t = threads ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        BLAS.threads = t
        Parallel.threads = t
        let presets: [(String, ModelShape)] = [
            ("large", ModelShape(dLLM: 2048, dEmbed: 1280, textBlocks: 1, textExpansion: 8, imageBlocks: 1, imageExpansion: 4)),
            ("small", ModelShape(dLLM: 1024, dEmbed: 512, textBlocks: 1, textExpansion: 4, imageBlocks: 1, imageExpansion: 4)),
        ].filter { preset == "all" || $0.0 == preset }
        if !json {
            print("proclip bench step: phase \(phase.rawValue), batch \(batch), \(t) thread(s), median of \(steps) steps")
            print(pad("preset", 7) + pad("step s", 9) + pad("samples/s", 11) + pad("GFLOP/step", 12) + pad("GFLOP/s", 9)
                  + pad("sgemm GFLOP/s", 15) + "of sgemm")
        }
        for (name, shape) in presets {
            let r = measure(shape)
            if json {
                print("{\"preset\": \"\(name)\", \"phase\": \"\(phase.rawValue)\", \"batch\": \(batch), \"threads\": \(t), "
                      + "\"step_seconds\": \(r.step), \"samples_per_second\": \(Double(batch) / r.step), \"gflop_per_step\": \(r.flops / 1e9), "
                      + "\"gflops\": \(r.flops / r.step / 1e9), \"sgemm_gflops\": \(r.flops / r.gemm / 1e9), \"fraction_of_sgemm\": \(r.gemm / r.step)}")
            } else {
                print(pad(name, 7) + pad(fmt(r.step, 3), 9) + pad(fmt(Double(batch) / r.step, 0), 11) + pad(fmt(r.flops / 1e9, 1), 12)
                      + pad(fmt(r.flops / r.step / 1e9, 1), 9) + pad(fmt(r.flops / r.gemm / 1e9, 1), 15) + fmt(100 * r.gemm / r.step, 1) + "%")
            }
        }
    }

    /// Median step time, the step's GEMM FLOPs, and the time the same GEMMs take alone.
    func measure(_ shape: ModelShape) -> (step: Double, flops: Double, gemm: Double) {
        let layout = ParameterLayout(shape)
        let store = ParameterStore(layout: layout)
        store.initialize(seed: 1)
        let settings = phase == .inherit
            ? LossSettings(kind: .inherit, insVariants: [0], strVariants: [0], group: min(batch, 128))
            : LossSettings(kind: .contrast, group: min(batch, 128), contrastVariants: [0])
        let group = LocalGroup(layout: layout, settings: settings, batch: batch, workers: 1)
        let engine = group.engines[0]
        var rng = SplitMix64(seed: 7)
        for slab in [engine.llmInput, engine.clipTextInput, engine.imageInput] {
            for i in 0..<slab.count { slab.base[i] = Float(rng.normal()) }
        }
        let opt = AdamWSettings(lr: [.text: 1e-5, .image: 1e-5, .scale: 1e-5])
        let scratch = AdamWScratch(layout: layout)
        func step(_ k: Int) {
            _ = group.step(store: store)
            AdamW.step(store: store, grads: group.grads.base, groups: engine.computedGroups, settings: opt,
                       t: k, lrFactor: 1, emaAlpha: 0.999, scratch: scratch)
        }
        GemmLog.start()
        step(1)
        let gemms = GemmLog.stop()
        var times: [Double] = []
        var stages = [Double](repeating: 0, count: 4)
        for k in 0..<steps {
            let t0 = MonotonicClock.now()
            if breakdown {
                engine.forward(store: store)
                let t1 = MonotonicClock.now()
                engine.prepare(gathered: engine.local.base, store: store)
                _ = engine.losses(gatheredStats: engine.stats.base, store: store)
                let t2 = MonotonicClock.now()
                engine.backward(store: store)
                let t3 = MonotonicClock.now()
                AdamW.step(store: store, grads: group.grads.base, groups: engine.computedGroups, settings: opt,
                           t: k + 2, lrFactor: 1, emaAlpha: 0.999, scratch: scratch)
                let t4 = MonotonicClock.now()
                for (i, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3].enumerated() { stages[i] += d / Double(steps) }
            } else {
                step(k + 2)
            }
            times.append(MonotonicClock.now() - t0)
        }
        if breakdown {
            print("  stages (mean s): forward \(fmt(stages[0], 4)), losses \(fmt(stages[1], 4)), backward \(fmt(stages[2], 4)), optimizer \(fmt(stages[3], 4))")
        }
        let flops = gemms.reduce(0) { $0 + $1.flops }
        return (median(times), flops, gemmTime(gemms))
    }

    /// Time of the recorded GEMMs replayed alone: each distinct shape timed (median of a few
    /// runs) and counted as often as the step executes it.
    func gemmTime(_ gemms: [GemmShape]) -> Double {
        let maxA = gemms.map { $0.m * $0.k }.max() ?? 0
        let maxB = gemms.map { $0.k * $0.n }.max() ?? 0
        let maxC = gemms.map { $0.m * $0.n }.max() ?? 0
        var rng = SplitMix64(seed: 3)
        let a = Slab(count: maxA), b = Slab(count: maxB), c = Slab(count: maxC)
        for s in [a, b, c] { for i in 0..<s.count { s.base[i] = Float(rng.uniform() - 0.5) } }
        var perShape: [GemmShape: Double] = [:]
        for g in Set(gemms) {
            let run = {
                BLAS.gemm(transA: g.transA, transB: g.transB, m: g.m, n: g.n, k: g.k,
                          a: a.base, lda: g.transA ? g.m : g.k, b: b.base, ldb: g.transB ? g.k : g.n,
                          beta: g.beta, c: c.base, ldc: g.n)
            }
            run()
            let reps = max(3, min(50, Int(2e9 / max(g.flops, 1))))
            var ts: [Double] = []
            for _ in 0..<reps {
                let t0 = MonotonicClock.now()
                run()
                ts.append(MonotonicClock.now() - t0)
            }
            perShape[g] = median(ts)
        }
        return gemms.reduce(0) { $0 + perShape[$1]! }
    }
}

private func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }

private func fmt(_ x: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if digits == 0, s.hasSuffix(".0") { s.removeLast(2) }
    return s
}

extension PhaseKind: ExpressibleByArgument {}
