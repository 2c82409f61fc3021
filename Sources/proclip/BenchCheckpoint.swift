import ArgumentParser
import Basics
import Checkpoints
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// `proclip bench checkpoint`: save and load speed and compression of a checkpoint of at least
/// 1 GB, with and without byte shuffle, beside `memcpy` and the `lz4` command on the same bytes
/// in the same run; and the training stall a save causes, against a step of the same model
/// measured in the same run.
struct BenchCheckpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Time checkpoint save/load and compression against memcpy, the lz4 command and a training step.",
        discussion: """
            The default state is the paper-scale text adaptor (D_llm 4096, expansion 8, D_embed 768, one \
            block; image head of one block, expansion 4): 276M parameters, 3.3 GB with the EMA teacher and \
            both Adam moments, filled with trained-looking values (weights N(0, 0.02²), first moments \
            N(0, 1e-8), second moments their squares). --size-gb picks D_llm for another size. Loads read \
            files just written (page cache). The lz4 command writes without fsync; proclip's save is \
            reported with and without its fsync; `lz4 -d` writes to /dev/null, as proclip's load writes to \
            memory. Training cost of a save, against one step (forward, backward, AdamW) of the same model \
            at --step-batch (default 128: the paper's inherit batch of 1024 over its 8 GPUs): the stall \
            (save(): the snapshot copy; beginSave(): the wait for the copy overlapping forward and \
            backward), and the time the steps run while the file is written in the background lose.
            """)

    @Option(help: "State size in GB (default: the paper-scale adaptor, 3.3 GB).") var sizeGb: Double?
    @Option(help: "Directory for the files (default: a new one under /tmp, removed afterwards).") var dir: String?
    @Option(help: "Batch of the reference training step (default: 128, the paper's 1024 over its 8 GPUs).") var stepBatch: Int = 128
    @Option(help: "Threads for OpenBLAS, the step and the snapshot copy (default: all CPUs).") var threads: Int?
    @Flag(help: "One JSON object instead of a table.") var json = false

    func validate() throws {
        if let s = sizeGb, !(s >= 0.01 && s <= 64) { throw ValidationError("--size-gb must be between 0.01 and 64") }
        if stepBatch < 1 { throw ValidationError("--step-batch must be at least 1") }
    }

    func run() throws {
        let t = threads ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        BLAS.useThreads(t)
        let shape = sizeGb.map { shapeForState(bytes: $0 * 1e9, expansion: 8, dEmbed: 768) }
            ?? ModelShape(dLLM: 4096, dEmbed: 768, textBlocks: 1, textExpansion: 8, imageBlocks: 1, imageExpansion: 4)
        let store = ParameterStore(layout: ParameterLayout(shape))
        fillTrainedLooking(store)
        let root = dir ?? "/tmp/proclip-bench-checkpoint-\(getpid())"
        try Files.makeDirectories(root)
        defer { if dir == nil { _ = spawnAndWait(["rm", "-rf", root]) } }

        var r = CheckpointBenchReport(shape: shape, parameters: store.layout.parameterCount(), threads: t, batch: stepBatch)
        r.memcpy = memcpyRate(store)
        for shuffle in [false, true] { r.modes.append(try measureFiles(store, shuffle: shuffle, root: root)) }
        try measureStall(store, root: root, into: &r)
        print(json ? r.json : r.table)
    }

    /// Save, load and the lz4 command on one mode's bytes.
    func measureFiles(_ store: ParameterStore, shuffle: Bool, root: String) throws -> CheckpointBenchReport.Mode {
        let sub = root + (shuffle ? "/shuffled" : "/plain")
        var options = CheckpointOptions(producer: proclipVersion)
        options.byteShuffle = shuffle
        options.keepLast = 1
        options.backgroundNice = 0
        let before = sampleHash(store)
        var m = CheckpointBenchReport.Mode(shuffle: shuffle)
        do {
            let writer = try CheckpointWriter(directory: sub, layout: store.layout, options: options)
            let stall = writer.save(store, meta: benchMeta(1))
            guard case .saved(let s)? = writer.finish().first else { throw FileError(sub, "bench save failed") }
            m.snapshot = stall.snapshot
            m.write = s.writeSeconds
            m.sync = s.syncSeconds
            m.cpu = s.cpuSeconds
            m.content = s.contentBytes
            m.file = s.fileBytes
            m.path = s.path
        }
        for slab in [store.params, store.expAvg, store.expAvgSq, store.ema] { slab.zero() }
        let t0 = MonotonicClock.now()
        try CheckpointFile.load(m.path, into: store)
        m.load = MonotonicClock.now() - t0
        guard sampleHash(store) == before else { throw FileError(m.path, "loaded state differs from the saved one") }

        let payload = sub + "/payload.safetensors", cli = sub + "/cli.lz4"
        _ = try timed(["lz4", "-d", "-q", "-f", m.path, payload])
        m.cliDecompress = try timed(["lz4", "-d", "-q", "-c", m.path], stdout: "/dev/null")
        m.cliCompress = try timed(["lz4", "-1", "-q", "-f", payload, cli])
        var st = stat()
        m.cliFile = stat(cli, &st) == 0 ? Int(st.st_size) : 0
        for f in [payload, cli, m.path] { unlink(f) }
        return m
    }

    /// The reference step; then, for each way of saving, the stall and what the steps that run
    /// while the file is written in the background lose against the reference.
    func measureStall(_ store: ParameterStore, root: String, into r: inout CheckpointBenchReport) throws {
        let layout = store.layout
        let settings = LossSettings(kind: .inherit, insVariants: [0], strVariants: [0], group: min(stepBatch, 128))
        let group = LocalGroup(layout: layout, settings: settings, batch: stepBatch, workers: 1)
        let engine = group.engines[0]
        var rng = SplitMix64(seed: 7)
        for slab in [engine.llmInput, engine.clipTextInput, engine.imageInput] {
            for i in 0..<slab.count { slab.base[i] = Float(rng.normal()) }
        }
        let opt = AdamWSettings(lr: [.text: 1e-5, .image: 1e-5, .scale: 1e-5])
        let scratch = AdamWScratch(layout: layout)
        var k = 1
        func step(beforeOptimizer: () -> Void = {}) -> (fb: Double, opt: Double) {
            let t0 = MonotonicClock.now()
            _ = group.step(store: store)
            beforeOptimizer()
            let t1 = MonotonicClock.now()
            AdamW.step(store: store, grads: group.grads.base, groups: engine.computedGroups, settings: opt,
                       t: k, lrFactor: 1, emaAlpha: 0.999, scratch: scratch)
            k += 1
            return (t1 - t0, MonotonicClock.now() - t1)
        }
        _ = step()
        var plain = (0..<3).map { _ in step() }
        r.forwardBackward = middle(plain.map(\.fb))
        r.optimizer = middle(plain.map(\.opt))

        var options = CheckpointOptions(producer: proclipVersion)
        options.keepLast = 1
        let writer = try CheckpointWriter(directory: root + "/during-training", layout: layout, options: options)
        for overlapped in [false, true] {
            var cost = CheckpointBenchReport.SaveCost()
            let t0 = MonotonicClock.now()
            if overlapped {
                writer.beginSave(store, meta: benchMeta(10))
                let s = step { cost.stall = writer.waitForSnapshot() }
                cost.lost = s.fb + s.opt - r.step - cost.stall
            } else {
                cost.stall = writer.save(store, meta: benchMeta(20)).snapshot
                let s = step()
                cost.lost = s.fb + s.opt - r.step
            }
            cost.steps = 1
            while writer.isBusy && cost.steps < 50 {
                let s = step()
                cost.lost += s.fb + s.opt - r.step
                cost.steps += 1
            }
            for o in writer.finish() {
                switch o {
                case .saved(let saved): cost.cpu = saved.cpuSeconds
                case .failed(_, let e): throw e
                }
            }
            cost.seconds = MonotonicClock.now() - t0
            if overlapped { r.overlapped = cost } else { r.blocking = cost }
        }
        // The machine may be shared: time the reference again and report its spread.
        plain += (0..<3).map { _ in step() }
        let totals = plain.map { $0.fb + $0.opt }
        r.stepRange = (totals.min() ?? 0)...(totals.max() ?? 0)
    }

    /// Copy rate of the state's bytes with one `memcpy` per tensor run, through a 256 MB target.
    func memcpyRate(_ store: ParameterStore) -> Double {
        let chunk = 64 << 20
        let target = Slab(count: chunk)
        let runs = [(store.params, store.params.count), (store.expAvg, store.expAvg.count), (store.expAvgSq, store.expAvgSq.count), (store.ema, store.ema.count)]
        var bytes = 0
        let t0 = MonotonicClock.now()
        for (slab, count) in runs {
            var at = 0
            while at < count {
                let n = min(chunk, count - at)
                memcpy(target.base, slab.base + at, 4 * n)
                at += n
                bytes += 4 * n
            }
        }
        return Double(bytes) / (MonotonicClock.now() - t0) / 1e9
    }

    func timed(_ argv: [String], stdout: String? = nil) throws -> Double {
        let t0 = MonotonicClock.now()
        let status = spawnAndWait(argv, stdout: stdout)
        guard status == 0 else { throw FileError(argv[0], "\(argv.joined(separator: " ")) exited with status \(status)") }
        return MonotonicClock.now() - t0
    }

    func benchMeta(_ step: Int) -> CheckpointMeta {
        CheckpointMeta(step: step, phaseIndex: 0, phaseName: "inherit", phaseStep: step, epoch: 0, epochStep: step,
                       optimizerStep: step, rngState: [1], config: "bench", configHash: "", manifestHash: "")
    }
}

/// The median of `xs`.
private func middle(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

/// Fills parameters, EMA and moments with trained-looking values, in parallel, seeded per block.
func fillTrainedLooking(_ store: ParameterStore) {
    Parallel.forBlocks(store.params.count, NoiseFill(dst: store.params.base, sigma: 0.02, square: false, seed: 1))
    Parallel.forBlocks(store.expAvg.count, NoiseFill(dst: store.expAvg.base, sigma: 1e-4, square: false, seed: 2))
    Parallel.forBlocks(store.expAvgSq.count, NoiseFill(dst: store.expAvgSq.base, sigma: 1e-4, square: true, seed: 3))
    Parallel.forBlocks(store.ema.count, NoiseFill(dst: store.ema.base, sigma: 0.02, square: false, seed: 4))
}

/// Approximately normal values (the sum of four 16-bit uniforms), scaled by `sigma`, or squared.
struct NoiseFill: BlockJob {
    let dst: UnsafeMutablePointer<Float>
    let sigma: Float
    let square: Bool
    let seed: UInt64

    func run(block: Int, _ lo: Int, _ hi: Int) {
        var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(block)))
        for i in lo..<hi {
            let r = rng.next()
            let sum = Float(r & 0xFFFF) + Float(r >> 16 & 0xFFFF) + Float(r >> 32 & 0xFFFF) + Float(r >> 48)
            let v = sigma * (sum - 131_070) / 37_837
            dst[i] = square ? v * v : v
        }
    }
}

/// A hash of every 4099th value of the state, to check a load restored it.
func sampleHash(_ store: ParameterStore) -> UInt64 {
    var h = FNV1a64()
    for slab in [store.params, store.expAvg, store.expAvgSq, store.ema] {
        var i = 0
        while i < slab.count {
            var bits = slab.base[i].bitPattern
            withUnsafeBytes(of: &bits) { h.update($0) }
            i += 4099
        }
    }
    return h.value
}

/// Runs a program found on PATH with the signal mask reset, its standard output sent to
/// `stdout` when given; returns its exit status (or 128 + the signal that ended it; 127 when it
/// cannot be started).
func spawnAndWait(_ argv: [String], stdout: String? = nil) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdout { posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
    var cargs = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var pid = pid_t()
    guard posix_spawnp(&pid, argv[0], &actions, &attr, &cargs, environ) == 0 else { return 127 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}
