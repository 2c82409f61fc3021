import Model

/// Figures of one `proclip bench checkpoint` run, and their rendering as a table or JSON.
/// Rates are GB/s of the uncompressed state (the safetensors payload).
struct CheckpointBenchReport {
    /// One file mode (plain or byte-shuffled): proclip's save and load, and the `lz4` command on
    /// the same payload bytes.
    struct Mode {
        let shuffle: Bool
        var snapshot = 0.0, write = 0.0, sync = 0.0, load = 0.0, cpu = 0.0
        var content = 0, file = 0
        var path = ""
        var cliDecompress = 0.0, cliCompress = 0.0
        var cliFile = 0

        init(shuffle: Bool) { self.shuffle = shuffle }

        var name: String { shuffle ? "shuffled" : "plain" }
        var gb: Double { Double(content) / 1e9 }
        var save: Double { gb / (snapshot + write) }
        var saveNoSync: Double { gb / (snapshot + write - sync) }
        var loadRate: Double { gb / load }
        var ratio: Double { Double(content) / Double(max(file, 1)) }
        var cliRatio: Double { Double(content) / Double(max(cliFile, 1)) }
        var cliCompressRate: Double { gb / cliCompress }
        var cliDecompressRate: Double { gb / cliDecompress }
    }

    /// What one save cost the training loop: the stall; the CPU time of the background write; and
    /// how much longer than reference steps the `steps` steps took that ran until the write
    /// finished (`seconds` after the save began) — noisy on a shared machine.
    struct SaveCost {
        var stall = 0.0, lost = 0.0, seconds = 0.0, cpu = 0.0
        var steps = 0
    }

    let shape: ModelShape
    let parameters: Int
    let threads: Int
    let batch: Int
    var memcpy = 0.0
    var modes: [Mode] = []
    var forwardBackward = 0.0, optimizer = 0.0
    /// Fastest and slowest reference step, three before the saves and three after.
    var stepRange: ClosedRange<Double> = 0...0
    var blocking = SaveCost(), overlapped = SaveCost()

    var step: Double { forwardBackward + optimizer }
    /// The default mode (byte shuffle on).
    var standard: Mode { modes.first { $0.shuffle } ?? modes[0] }
    /// A step at global batch `global` on `workers` workers: forward and backward scale with the
    /// rows each worker holds; the optimizer step does not.
    func predictedStep(global: Int, workers: Int) -> Double {
        forwardBackward * Double(global) / Double(workers * batch) + optimizer
    }
    static let paperBatch = 1024
    static let workerCounts = [1, 8, 16]

    var table: String {
        var out: [String] = []
        out.append("proclip bench checkpoint: \(gbText(standard.gb)) GB state (D_llm \(shape.dLLM) ×\(shape.textExpansion), D_embed \(shape.dEmbed); "
                   + "\(parameters / 1_000_000)M parameters + EMA + 2 Adam moments), \(threads) thread(s)")
        out.append("reference memcpy of the state's bytes: \(f(memcpy, 2)) GB/s")
        out.append(column("", 10) + column("save GB/s", 11) + column("(no fsync)", 12) + column("load GB/s", 11) + column("ratio", 8)
                   + column("lz4 -1 GB/s", 13) + column("lz4 ratio", 11) + column("lz4 -d GB/s", 13) + "snapshot s")
        for m in modes {
            out.append(column(m.name, 10) + column(f(m.save, 2), 11) + column(f(m.saveNoSync, 2), 12) + column(f(m.loadRate, 2), 11) + column(f(m.ratio, 3), 8)
                       + column(f(m.cliCompressRate, 2), 13) + column(f(m.cliRatio, 3), 11) + column(f(m.cliDecompressRate, 2), 13) + f(m.snapshot, 3))
        }
        for m in modes {
            out.append("\(m.name): save (no fsync) \(f(m.saveNoSync / memcpy, 3))× memcpy, \(f(m.saveNoSync / m.cliCompressRate, 2))× lz4 -1; "
                       + "load \(f(m.loadRate / memcpy, 3))× memcpy, \(f(m.loadRate / m.cliDecompressRate, 2))× lz4 -d; write used \(f(m.cpu, 1)) s CPU")
        }
        let plain = modes.first { !$0.shuffle }
        if let plain { out.append("byte shuffle: file \(f(Double(standard.file) / Double(plain.file), 3))× the plain one") }
        out.append("training step (batch \(batch), inherit): \(f(step, 3)) s = forward+backward \(f(forwardBackward, 3)) s + AdamW \(f(optimizer, 3)) s"
                   + " (six reference steps: \(f(stepRange.lowerBound, 3))–\(f(stepRange.upperBound, 3)) s)")
        for (name, c) in [("save()", blocking), ("beginSave()", overlapped)] {
            out.append("\(column(name, 12)) stall \(f(c.stall, 3)) s = \(f(100 * c.stall / step, 1))% of a step; background write \(f(c.seconds, 1)) s "
                       + "using \(f(c.cpu, 1)) s of CPU (\(f(c.cpu / step, 2)) steps' worth of one core); its \(c.steps) step(s) took \(f(c.lost, 1)) s "
                       + "more than \(c.steps) reference steps")
        }
        let predicted = CheckpointBenchReport.workerCounts.map { w -> String in
            let s = predictedStep(global: CheckpointBenchReport.paperBatch, workers: w)
            return "\(w) worker\(w == 1 ? "" : "s"): step \(f(s, 2)) s, save() stall \(f(100 * blocking.stall / s, 1))%"
        }
        out.append("paper batch \(CheckpointBenchReport.paperBatch) (predicted per worker) — " + predicted.joined(separator: "; "))
        return out.joined(separator: "\n")
    }

    var json: String {
        func mode(_ m: Mode) -> String {
            "{\"shuffle\": \(m.shuffle), \"content_bytes\": \(m.content), \"file_bytes\": \(m.file), \"ratio\": \(m.ratio), "
            + "\"snapshot_seconds\": \(m.snapshot), \"write_seconds\": \(m.write), \"fsync_seconds\": \(m.sync), "
            + "\"write_cpu_seconds\": \(m.cpu), \"save_gbps\": \(m.save), \"save_gbps_no_fsync\": \(m.saveNoSync), \"load_seconds\": \(m.load), \"load_gbps\": \(m.loadRate), "
            + "\"lz4_cli_compress_gbps\": \(m.cliCompressRate), \"lz4_cli_ratio\": \(m.cliRatio), \"lz4_cli_decompress_gbps\": \(m.cliDecompressRate)}"
        }
        func cost(_ c: SaveCost) -> String {
            "{\"stall_seconds\": \(c.stall), \"stall_fraction_of_step\": \(c.stall / step), \"steps_during_write\": \(c.steps), "
            + "\"lost_seconds\": \(c.lost), \"write_seconds\": \(c.seconds), \"write_cpu_seconds\": \(c.cpu)}"
        }
        let predicted = CheckpointBenchReport.workerCounts.map {
            "{\"workers\": \($0), \"step_seconds\": \(predictedStep(global: CheckpointBenchReport.paperBatch, workers: $0))}"
        }
        return "{\"model\": {\"d_llm\": \(shape.dLLM), \"d_embed\": \(shape.dEmbed), \"text_blocks\": \(shape.textBlocks), "
            + "\"text_expansion\": \(shape.textExpansion), \"image_blocks\": \(shape.imageBlocks), \"image_expansion\": \(shape.imageExpansion)}, "
            + "\"parameters\": \(parameters), \"threads\": \(threads), \"memcpy_gbps\": \(memcpy), "
            + "\"modes\": [\(modes.map(mode).joined(separator: ", "))], "
            + "\"step\": {\"batch\": \(batch), \"seconds\": \(step), \"forward_backward_seconds\": \(forwardBackward), \"optimizer_seconds\": \(optimizer), "
            + "\"reference_min_seconds\": \(stepRange.lowerBound), \"reference_max_seconds\": \(stepRange.upperBound)"
            + "}, \"save\": \(cost(blocking)), \"begin_save\": \(cost(overlapped)), "
            + "\"paper_batch_predicted\": [\(predicted.joined(separator: ", "))]}"
    }

    /// `s` left-aligned in `width` columns, at least one space after it.
    private func column(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    private func f(_ x: Double, _ digits: Int) -> String { x.isFinite ? fixed(x, digits) : "-" }
    private func gbText(_ x: Double) -> String { fixed(x, 2) }
}
