import ArgumentParser
import Basics
import Features
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// `proclip bench data DIR`: how fast the trainer's per-step reads and the verifier's checksum
/// run, each beside a plain `memcpy` of the same bytes measured in the same run; and how long
/// opening the dataset for training takes (every listed file's CRC-32).
struct DataBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Time batch reads (inherit and contrast layouts) and CRC-32 against memcpy of the same bytes.")

    @Argument(help: "A dataset directory (e.g. written by proclip synth).") var directory: String
    @Option(help: "Global batch size B.") var batch: Int = 1024
    @Option(help: "Steps to time.") var steps: Int = 200

    func run() throws {
        let ds: FeatureDataset
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        do { ds = try FeatureDataset.open(directory, verifyChecksums: true) } catch let e as FileError {
            printError(e.description)
            throw ExitCode.failure
        }
        clock_gettime(CLOCK_MONOTONIC, &t1)
        let open = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) * 1e-9
        var files = 0
        for s in ds.manifest.shards { files += s.files.values.reduce(0) { $0 + $1.bytes } }
        files += ds.manifest.prompts?.files.values.reduce(0) { $0 + $1.bytes } ?? 0
        let v = ds.variantCount, b = min(batch, ds.indices(of: .train).count)
        var sampler = try GlobalBatchSampler(population: ds.indices(of: .train), batchSize: b, seed: 1)
        let variants = Array(0..<v)
        let llm = Slab(count: v * b * ds.dLLM), clip = Slab(count: v * b * ds.dEmbed), image = Slab(count: b * ds.dEmbed)
        var perRow = [Int](repeating: 0, count: b)
        let floatsAll = v * b * (ds.dLLM + ds.dEmbed) + b * ds.dEmbed
        let floatsOne = b * (ds.dLLM + 2 * ds.dEmbed)
        var position = EpochPosition(epoch: 0, step: 0)

        let inherit = time(steps) {
            let rows = sampler.slice(at: position, rank: 0, worldSize: 1)
            ds.read(rows: rows, variants: variants, llm: llm.base, clipText: clip.base, image: image.base)
            position = sampler.advance(position)
        }
        let contrast = time(steps) {
            let rows = sampler.slice(at: position, rank: 0, worldSize: 1)
            perRow.withUnsafeMutableBufferPointer {
                GlobalBatchSampler.variants(seed: 1, epoch: position.epoch, rows: rows, allowed: variants, into: $0)
            }
            ds.read(rows: rows, variantPerRow: perRow[...], llm: llm.base, clipText: clip.base, image: image.base)
            position = sampler.advance(position)
        }
        let source = Slab(count: floatsAll), target = Slab(count: floatsAll)
        let copy = time(steps) { memcpy(target.base, source.base, floatsAll * 4) }
        let crc = time(steps) { _ = CRC32.checksum(UnsafeRawBufferPointer(start: source.base, count: floatsAll * 4)) }

        let dtype = ds.manifest.dtype
        func gbps(_ floats: Int, _ seconds: Double) -> String { fmt(Double(floats * 4 * steps) / seconds / 1e9) }
        print("dataset \(directory): \(dtype), D_embed \(ds.dEmbed), D_llm \(ds.dLLM), V \(v), batch \(b), \(steps) steps")
        print("inherit read  (all V variants): \(fmt(inherit / Double(steps) * 1e3)) ms/step, \(gbps(floatsAll, inherit)) GB/s of float32 out")
        print("contrast read (1 variant/row):  \(fmt(contrast / Double(steps) * 1e3)) ms/step, \(gbps(floatsOne, contrast)) GB/s of float32 out")
        print("reference memcpy of the inherit bytes: \(gbps(floatsAll, copy)) GB/s")
        print("CRC-32 (verify, manifest checksums):   \(gbps(floatsAll, crc)) GB/s")
        print("open for training (every file's CRC-32): \(fmt(open)) s for \(fmt(Double(files) / 1e6)) MB, "
              + "\(fmt(Double(files) / open / 1e6)) MB/s (first open: page cache may be cold)")
    }

    private func time(_ n: Int, _ body: () -> Void) -> Double {
        body()  // warm-up: page faults of the map, first-touch of buffers
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        for _ in 0..<n { body() }
        clock_gettime(CLOCK_MONOTONIC, &t1)
        return Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) * 1e-9
    }

    private func fmt(_ x: Double) -> String {
        let r = (x * 100).rounded() / 100
        return "\(r)"
    }
}
