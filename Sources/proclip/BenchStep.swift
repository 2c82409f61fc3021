import ArgumentParser
import Basics
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
    @Flag(help: "Run the step's GEMMs on OpenBLAS's own threads instead of splitting them over proclip's pool.")
    var openblasThreads = false
    @Flag(help: "One JSON object per preset instead of a table.") var json = false
    @Flag(help: "Also print the mean time of each stage of the step.") var breakdown = false

    func validate() throws {
        if !["large", "small", "all"].contains(preset) { throw ValidationError("--preset must be large, small or all") }
        if batch < 1 || steps < 1 { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        let t = threads ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        BLAS.useThreads(t)
        if openblasThreads {
            BLAS.threads = t
            BLAS.splitThreads = 1
        }
        let presets: [(String, ModelShape)] = [
            ("large", ModelShape(dLLM: 2048, dEmbed: 1280, textBlocks: 1, textExpansion: 8, imageBlocks: 1, imageExpansion: 4)),
            ("small", ModelShape(dLLM: 1024, dEmbed: 512, textBlocks: 1, textExpansion: 4, imageBlocks: 1, imageExpansion: 4)),
        ].filter { preset == "all" || $0.0 == preset }
        if !json {
            print("proclip bench step: phase \(phase.rawValue), batch \(batch), \(t) thread(s), median of \(steps) steps, "
                  + "each followed by its GEMMs replayed alone on OpenBLAS's threads (\"of sgemm\": median of the paired ratios)")
            print(pad("preset", 7) + pad("step s", 9) + pad("samples/s", 11) + pad("GFLOP/step", 12) + pad("GFLOP/s", 9)
                  + pad("sgemm GFLOP/s", 15) + "of sgemm")
        }
        for (name, shape) in presets {
            let r = measure(shape, threads: t)
            if json {
                print("{\"preset\": \"\(name)\", \"phase\": \"\(phase.rawValue)\", \"batch\": \(batch), \"threads\": \(t), "
                      + "\"step_seconds\": \(r.step), \"samples_per_second\": \(Double(batch) / r.step), \"gflop_per_step\": \(r.flops / 1e9), "
                      + "\"gflops\": \(r.flops / r.step / 1e9), \"sgemm_gflops\": \(r.flops / r.gemm / 1e9), \"fraction_of_sgemm\": \(r.ratio)}")
            } else {
                print(pad(name, 7) + pad(fmt(r.step, 3), 9) + pad(fmt(Double(batch) / r.step, 0), 11) + pad(fmt(r.flops / 1e9, 1), 12)
                      + pad(fmt(r.flops / r.step / 1e9, 1), 9) + pad(fmt(r.flops / r.gemm / 1e9, 1), 15) + fmt(100 * r.ratio, 1) + "%")
            }
        }
    }

    /// Median step time, the step's GEMM FLOPs, and the median time of the same GEMMs alone. Each
    /// timed step is followed by a replay of its GEMMs (same shapes, same order, on buffers of the
    /// same sizes), so both see the machine in the same state; `gemm / step` is the median of
    /// those paired ratios.
    func measure(_ shape: ModelShape, threads t: Int) -> (step: Double, flops: Double, gemm: Double, ratio: Double) {
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
        let replay = GemmReplay(gemms, threads: t)
        replay.run()
        var times: [Double] = [], gemmTimes: [Double] = [], ratios: [Double] = []
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
            let t5 = MonotonicClock.now()
            replay.run()
            let t6 = MonotonicClock.now()
            times.append(t5 - t0)
            gemmTimes.append(t6 - t5)
            ratios.append((t6 - t5) / (t5 - t0))
        }
        if breakdown {
            print("  stages (mean s): forward \(fmt(stages[0], 4)), losses \(fmt(stages[1], 4)), backward \(fmt(stages[2], 4)), optimizer \(fmt(stages[3], 4))")
        }
        return (median(times), gemms.reduce(0) { $0 + $1.flops }, median(gemmTimes), median(ratios))
    }
}

/// The GEMMs of one step, replayed alone on buffers as large as the step's largest operands, with
/// `cblas_sgemm` as the library runs it by itself: OpenBLAS's own threads.
final class GemmReplay {
    let gemms: [GemmShape]
    let a, b, c: Slab
    let threads: Int

    init(_ gemms: [GemmShape], threads: Int) {
        self.gemms = gemms
        self.threads = threads
        a = Slab(count: gemms.map { $0.m * $0.k }.max() ?? 0)
        b = Slab(count: gemms.map { $0.k * $0.n }.max() ?? 0)
        c = Slab(count: gemms.map { $0.m * $0.n }.max() ?? 0)
        var rng = SplitMix64(seed: 3)
        for s in [a, b, c] { for i in 0..<s.count { s.base[i] = Float(rng.uniform() - 0.5) } }
    }

    func run() {
        let (blas, split) = (BLAS.threads, BLAS.splitThreads)
        BLAS.threads = threads
        BLAS.splitThreads = 1
        defer { BLAS.threads = blas; BLAS.splitThreads = split }
        for g in gemms {
            BLAS.gemm(transA: g.transA, transB: g.transB, m: g.m, n: g.n, k: g.k,
                      a: a.base, lda: g.transA ? g.m : g.k, b: b.base, ldb: g.transB ? g.k : g.n,
                      beta: g.beta, c: c.base, ldc: g.n)
        }
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
