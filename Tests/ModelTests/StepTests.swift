import CAllocCounter
import Model
import Tensors
import XCTest

/// The whole step: gradients of the complete model by finite differences, steady-state steps
/// that allocate nothing, and deterministic results.
final class StepTests: XCTestCase {
    let shape = ModelShape(dLLM: 6, dEmbed: 4, textBlocks: 2, textExpansion: 2, imageBlocks: 2, imageExpansion: 2)

    func makeBatch(_ b: Int, variants: Int, seed: UInt64, duplicate: Bool) -> BatchArrays {
        var rng = SplitMix64(seed: seed)
        var llm = randomFloats(b * variants * shape.dLLM, &rng)
        var clip = randomFloats(b * variants * shape.dEmbed, &rng)
        var image = randomFloats(b * shape.dEmbed, &rng)
        if duplicate && b > 4 {
            let rl = variants * shape.dLLM, re = variants * shape.dEmbed
            for k in 0..<rl { llm[4 * rl + k] = llm[3 * rl + k] }
            for k in 0..<re { clip[4 * re + k] = clip[3 * re + k] }
            for k in 0..<shape.dEmbed { image[4 * shape.dEmbed + k] = image[3 * shape.dEmbed + k] }
        }
        let variant = (0..<b).map { Int32($0 % variants) }
        return BatchArrays(batch: b, variants: variants, llm: llm, clipText: clip, image: image, variant: variant)
    }

    /// d loss / d parameters of the whole model (both phases) against central differences, with
    /// B not divisible by G, B = 1 and duplicated rows.
    func testWholeModelGradients() {
        for kind in PhaseKind.allCases {
            for (b, g, dup) in [(1, 4, false), (7, 3, true), (6, 6, false)] {
                let settings = LossSettings(kind: kind, insVariants: [0, 2], strVariants: [1], wIns: 0.7, wStr: 1.3,
                                            group: g, lambda: 0.5, contrastVariants: [0, 1, 2])
                let layout = ParameterLayout(shape)
                let store = ParameterStore(layout: layout)
                store.initialize(seed: 3)
                var rng = SplitMix64(seed: 11)
                // Move away from the identity head and zero-initialised W2 so every path carries gradient.
                for i in 0..<layout.count { store.params.base[i] += Float(0.2 * rng.normal()) }
                store.params.base[layout.logitScale] = 1.5
                let batch = makeBatch(b, variants: 3, seed: UInt64(b), duplicate: dup)
                let group = LocalGroup(layout: layout, settings: settings, batch: b, workers: 1)
                batch.fill(group.engines[0])
                _ = group.step(store: store)
                let computed = group.engines[0].computedGroups
                let span = layout.span(of: computed)
                let grad = Array(group.grads.buffer[span])
                let f = { () -> Double in group.step(store: store).total }
                checkDirectionalDerivative("\(kind) B=\(b) G=\(g) dup=\(dup)", x: store.params.base + span.lowerBound, count: span.count,
                                           grad: grad, h: 1e-3, directions: 4, rtol: 3e-2, f: f)
            }
        }
    }

    /// After warm-up, a step (forward, losses, backward, optimizer) makes no heap allocation,
    /// with one thread and with two (sizes large enough for the kernels to split the work).
    /// OpenBLAS runs single-threaded here: its threaded level-3 driver mallocs a job table on
    /// every call, which is the library's own bookkeeping, not the step's.
    func testSteadyStateStepAllocatesNothing() {
        let blasThreads = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = blasThreads }
        let shape = ModelShape(dLLM: 128, dEmbed: 32, textBlocks: 2, textExpansion: 4, imageBlocks: 1, imageExpansion: 4)
        for threads in [1, 2] {
            Parallel.threads = threads
            defer { Parallel.threads = 1 }
            for kind in PhaseKind.allCases {
                let settings = LossSettings(kind: kind, insVariants: [0, 1], strVariants: [0], group: 4, contrastVariants: [0, 1])
                let layout = ParameterLayout(shape)
                let store = ParameterStore(layout: layout)
                store.initialize(seed: 1)
                let group = LocalGroup(layout: layout, settings: settings, batch: 64, workers: 2)
                var rng = SplitMix64(seed: 5)
                let batch = BatchArrays(batch: 64, variants: 2, llm: randomFloats(64 * 2 * 128, &rng),
                                        clipText: randomFloats(64 * 2 * 32, &rng), image: randomFloats(64 * 32, &rng),
                                        variant: (0..<64).map { Int32($0 % 2) })
                for e in group.engines { batch.fill(e) }
                let opt = AdamWSettings(lr: [.text: 1e-3, .image: 1e-3, .scale: 1e-3], clipNorm: 1)
                let scratch = AdamWScratch(layout: layout)
                let computed = group.engines[0].computedGroups
                func step(_ t: Int) {
                    _ = group.step(store: store)
                    AdamW.step(store: store, grads: group.grads.base, groups: computed, settings: opt, t: t, lrFactor: 0.5,
                               emaAlpha: 0.99, scratch: scratch)
                }
                step(1)
                step(2)
                alloc_counter_start()
                for t in 3...5 { step(t) }
                let n = alloc_counter_stop()
                XCTAssertEqual(n, 0, "\(kind), \(threads) thread(s): \(n) heap allocations in 3 steady-state steps")
            }
        }
    }

    /// The counter does count: allocating code is seen.
    func testAllocationCounterSeesAllocations() {
        alloc_counter_start()
        let s = Slab(count: 1000)
        let n = alloc_counter_stop()
        XCTAssertGreaterThanOrEqual(n, 1)
        XCTAssertEqual(s.count, 1000)
    }

    /// The same inputs give bit-identical results, whatever the thread count.
    func testDeterministicAcrossThreadCounts() {
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            Parallel.threads = threads
            defer { Parallel.threads = 1 }
            let settings = LossSettings(kind: .contrast, group: 4, lambda: 0.1, contrastVariants: [0])
            let layout = ParameterLayout(shape)
            let store = ParameterStore(layout: layout)
            store.initialize(seed: 9)
            let group = LocalGroup(layout: layout, settings: settings, batch: 8, workers: 1)
            makeBatch(8, variants: 1, seed: 2, duplicate: false).fill(group.engines[0])
            let scratch = AdamWScratch(layout: layout)
            for t in 1...3 {
                _ = group.step(store: store)
                AdamW.step(store: store, grads: group.grads.base, groups: .all,
                           settings: AdamWSettings(lr: [.text: 1e-2, .image: 1e-2, .scale: 1e-2], clipNorm: 0.5),
                           t: t, lrFactor: 1, emaAlpha: 0.9, scratch: scratch)
            }
            results.append(store.params.toArray() + store.ema.toArray())
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])
    }
}
