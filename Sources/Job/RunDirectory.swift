import Basics
import FoundationEssentials
import JobConfig
import Model
import Tensors

#if canImport(Glibc)
import Glibc
#endif

/// Everything a run writes, under one directory:
/// - `config.yaml` — the job config as given;
/// - `metrics.jsonl` — one JSON object per optimizer step;
/// - `eval.json` — the eval reports (the baseline, then one per phase end), rewritten atomically;
/// - `train.log` — the run's log lines;
/// - `final.safetensors` — the trained parameters under their PyTorch names.
public final class RunDirectory {
    public let path: String
    private let metrics: LineFile
    private let logFile: UnsafeMutablePointer<FILE>
    private var lastFlush = 0.0

    /// Creates (or, with `overwrite`, reuses) the directory. An existing run is never clobbered
    /// silently: without `overwrite` a directory holding a run is refused. With `resumeAt`, the run
    /// continues: metrics of later steps (from the interrupted run) are dropped, the log is kept.
    public init(path: String, overwrite: Bool, resumeAt: Int? = nil) throws {
        if Files.exists(path + "/metrics.jsonl") && !overwrite && resumeAt == nil {
            throw TrainingError("\(path) already holds a run (metrics.jsonl); choose another --run-dir, pass --overwrite, or --resume")
        }
        try Files.makeDirectories(path)
        if let step = resumeAt, Files.exists(path + "/metrics.jsonl") {
            // A job killed while its buffered lines were written leaves a partial last line (no
            // newline): dropped with the lines of later steps (the checkpoints carry it whole).
            var text = String(decoding: try Files.read(path + "/metrics.jsonl"), as: UTF8.self)
            if !text.hasSuffix("\n") { text = String(text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)]) }
            let kept = text.split(separator: "\n").filter { (RunDirectory.step(of: $0) ?? Int.max) <= step }
            try Files.writeAtomically(path + "/metrics.jsonl", Array((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8))
        }
        metrics = try LineFile(path: path + "/metrics.jsonl", truncate: resumeAt == nil)
        guard let l = fopen(path + "/train.log", resumeAt == nil ? "w" : "a") else {
            throw FileError(path + "/train.log", "cannot create: \(Files.errnoText())")
        }
        logFile = l
        self.path = path
    }

    deinit { fclose(logFile) }

    /// The step of the last line of metrics.jsonl.
    public var lastMetricsStep: Int? {
        guard let bytes = try? Files.read(path + "/metrics.jsonl") else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").last.flatMap { RunDirectory.step(of: $0) }
    }

    /// The `"step"` of a metrics line.
    public static func step(of line: Substring) -> Int? {
        guard let r = line.range(of: "\"step\":") else { return nil }
        return Int(line[r.upperBound...].prefix { $0.isNumber })
    }

    /// The eval reports of an interrupted run up to `step` (the baseline and earlier phase ends).
    public func evalReports(upTo step: Int) -> [EvalReport] {
        guard let bytes = try? Files.read(path + "/eval.json"),
              let reports = try? JSONDecoder().decode([EvalReport].self, from: Data(bytes)) else { return [] }
        return reports.filter { ($0.step ?? 0) <= step }
    }

    /// Keeps the config text beside the results.
    public func saveConfig(_ text: String) throws { try Files.writeAtomically(path + "/config.yaml", Array(text.utf8)) }

    /// Appends one metrics line. Lines reach the file, whole, once 4 KiB of them are waiting and
    /// at least every half second (`flushMetrics` is called on the way out), so a crash loses at
    /// most a few lines (the checkpoints carry them for a resumed run); a failed write (a full
    /// disk) throws, naming the file, and leaves only whole lines.
    public func appendMetrics(_ json: String) throws {
        metrics.append(json)
        let now = MonotonicClock.now()
        if metrics.pendingBytes >= 4096 || now - lastFlush >= 0.5 {
            lastFlush = now
            try metrics.flush()
        }
    }

    /// Drops the metrics lines of steps after `step` (a new generation of workers recomputes them
    /// from a checkpoint), so that metrics.jsonl keeps describing the steps that made the model.
    public func rewindMetrics(toStep step: Int) throws {
        try metrics.flush()
        let kept = String(decoding: try Files.read(metrics.path), as: UTF8.self).split(separator: "\n")
            .filter { (RunDirectory.step(of: $0) ?? Int.max) <= step }
        try metrics.replace(with: kept)
    }

    /// Writes buffered metrics lines out now (whole lines, or an error naming the file).
    public func flushMetrics() throws {
        lastFlush = MonotonicClock.now()
        try metrics.flush()
    }

    /// Appends a line to train.log.
    public func log(_ line: String) {
        fputs(line, logFile)
        fputs("\n", logFile)
        fflush(logFile)
    }

    /// Rewrites eval.json with every report so far.
    public func writeEval(_ reports: [EvalReport]) throws {
        try flushMetrics()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(reports)
        try Files.writeAtomically(path + "/eval.json", Array(data))
    }

    /// Writes the parameters under their PyTorch names (loadable with `load_state_dict`).
    public func writeParameters(_ store: ParameterStore, name: String, config: JobConfig, step: Int) throws {
        try RunDirectory.writeParameters(store, to: path + "/" + name, config: config, step: step)
    }

    /// `writeParameters` into the file `file` (from any thread: it touches no state of a run).
    public static func writeParameters(_ store: ParameterStore, to file: String, config: JobConfig, step: Int) throws {
        var w = SafeTensorsWriter()
        store.write(into: &w)
        w.metadata["config_hash"] = config.hash
        w.metadata["step"] = "\(step)"
        w.metadata["format"] = "pt"
        try w.write(to: file)
    }
}
