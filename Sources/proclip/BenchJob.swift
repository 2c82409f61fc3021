import ArgumentParser
import Basics
import Features
import FoundationEssentials
import Job
import JobConfig
import Model
import Ring
import Spawn
import Tensors
import Trainer
import Worker

/// `proclip bench job`: what the coordinator costs. The same steps of a config run twice with W
/// worker processes on this host: once under a coordinator (`proclip launch`: registration,
/// leases, heartbeats, per-step reports; periodic checkpoints off, as the bare ring has none),
/// once as a bare ring with no coordinator at all. Steps
/// per second are measured over the same steps (after a warm-up), repeated, in alternating order.
struct BenchJob: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Steps per second of a job under the coordinator against a bare ring of the same workers.")

    @Option(help: "Job config.") var config: String = "Configs/demo.yaml"
    @Option(help: "Worker processes.") var workers: Int = 2
    @Option(help: "Steps per run.") var steps: Int = 200
    @Option(help: "Steps not counted at the start of a run (warm-up).") var warmup: Int = 20
    @Option(help: "Threads per worker.") var threads: Int = 1
    @Option(help: "Runs of each kind.") var repeats: Int = 3
    @Option(help: "Ring between the workers, both kinds of run: ipc or tcp.") var transport: LocalTransport = .ipc
    @Option(help: "Gradient all-reduce during backward, both kinds of run: auto, on, off.") var overlap: GradientOverlap = .auto
    @Flag(help: "One JSON object instead of a table.") var json = false

    func validate() throws {
        if steps <= warmup + 1 { throw ValidationError("--steps must exceed --warmup + 1") }
    }

    func run() throws {
        let job = try JobConfig.load(path: config)
        _ = try DatasetSource.open(config: job) { printError("proclip bench job: " + $0) }
        let exe = LaunchCommand().selfExecutable()
        let tmp = "/tmp/proclip-bench-job-\(getpid())"
        try Files.makeDirectories(tmp)
        var withCoordinator: [Double] = [], bare: [Double] = []
        for r in 0..<repeats {
            for kind in (r % 2 == 0 ? [0, 1] : [1, 0]) {
                if kind == 0 {
                    let dir = "\(tmp)/launch-\(r)"
                    let p = try LoggedProcess(executable: exe, arguments: [
                        "launch", "--config", config, "--workers", "\(workers)", "--max-steps", "\(steps)", "--run-dir", dir,
                        "--overwrite", "--quiet", "--threads", "\(threads)", "--checkpoint-every", "0", "--transport", transport.rawValue] + ["--overlap", overlap.rawValue], log: "\(tmp)/launch-\(r).log")
                    guard p.wait(timeout: 3600) == .exited(0) else { throw ValidationError("launch failed; see \(tmp)/launch-\(r).log") }
                    withCoordinator.append(try stepsPerSecond(metrics: dir + "/metrics.jsonl"))
                } else {
                    bare.append(try bareRing(exe: exe, log: "\(tmp)/bare-\(r)"))
                }
            }
        }
        let a = medianOf(withCoordinator), b = medianOf(bare)
        _ = try? FileManager.default.removeItem(atPath: tmp)  // the runs' logs, kept only when one failed
        if json {
            print("{\"config\": \"\(config)\", \"workers\": \(workers), \"transport\": \"\(transport.rawValue)\", \"overlap\": \"\(overlap.rawValue)\", \"steps\": \(steps - warmup), \"with_coordinator_steps_per_second\": \(a), "
                  + "\"bare_ring_steps_per_second\": \(b), \"ratio\": \(a / b), \"runs\": {\"with_coordinator\": \(withCoordinator), \"bare_ring\": \(bare)}}")
        } else {
            print("proclip bench job: \(config), \(workers) workers × \(threads) thread(s), ring over \(transport.rawValue), overlap \(overlap.rawValue), steps \(warmup + 1)…\(steps), median of \(repeats)")
            print("  under the coordinator: \(fixed(a, 2)) steps/s   (runs: \(withCoordinator.map { fixed($0, 2) }.joined(separator: ", ")))")
            print("  bare ring:             \(fixed(b, 2)) steps/s   (runs: \(bare.map { fixed($0, 2) }.joined(separator: ", ")))")
            print("  ratio: \(fixed(a / b, 3)) (coordinator overhead \(fixed(100 * (1 - a / b), 1))%)")
        }
    }

    /// Steps per second between step `warmup` and the last, from metrics.jsonl's timestamps.
    func stepsPerSecond(metrics path: String) throws -> Double {
        let lines = String(decoding: try Files.read(path), as: UTF8.self).split(separator: "\n")
        guard lines.count == steps else { throw ValidationError("\(path): \(lines.count) steps, expected \(steps)") }
        func time(_ line: Substring) throws -> Double {
            guard let r = line.range(of: "\"time\":"), let t = Double(line[r.upperBound...].prefix { "0123456789.e+-".contains($0) }) else {
                throw ValidationError("\(path): a line without time")
            }
            return t
        }
        return Double(steps - warmup) / (try time(lines[steps - 1]) - time(lines[warmup - 1]))
    }

    /// The same steps over a ring of `workers` processes with no coordinator.
    func bareRing(exe: String, log: String) throws -> Double {
        let ports = (0..<workers).map { 40000 + Int(getpid() % 5000) + $0 * 7 + Int.random(in: 0..<5) * 1000 }
        let endpoints = (transport == .ipc ? (0..<workers).map { "ipc:///tmp/proclip-bench-job-\(getpid())-\($0)" }
                                           : ports.map { "tcp://127.0.0.1:\($0)" }).joined(separator: ",")
        var procs: [LoggedProcess] = []
        for r in 0..<workers {
            procs.append(try LoggedProcess(executable: exe, arguments: [
                "bench", "job-rank", "--config", config, "--rank", "\(r)", "--endpoints", endpoints, "--steps", "\(steps)",
                "--warmup", "\(warmup)", "--threads", "\(threads)"] + ["--overlap", overlap.rawValue], log: "\(log)-\(r).log"))
        }
        defer { for e in endpoints.split(separator: ",") { RingListener.removeLeftovers(of: String(e)) } }
        for (r, p) in procs.enumerated() {
            guard p.wait(timeout: 3600) == .exited(0) else { throw ValidationError("bare ring rank \(r) failed; see \(log)-\(r).log") }
        }
        let out = String(decoding: try Files.read("\(log)-0.log"), as: UTF8.self)
        guard let line = out.split(separator: "\n").last(where: { $0.hasPrefix("steps_per_second ") }),
              let v = Double(line.dropFirst("steps_per_second ".count)) else { throw ValidationError("\(log)-0.log: no result") }
        return v
    }

    func medianOf(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// One rank of `proclip bench job`'s bare ring (not for direct use).
struct BenchJobRank: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job-rank", abstract: "One rank of a bare ring (internal).",
                                                    shouldDisplay: false)
    @Option var config: String
    @Option var rank: Int
    @Option var endpoints: String
    @Option var steps: Int
    @Option var warmup: Int
    @Option var threads: Int = 1
    @Option var overlap: GradientOverlap = .auto

    func run() throws {
        BLAS.useThreads(threads)
        let job = try JobConfig.load(path: config)
        let dataset = try FeatureDataset.open(job.data.path)
        let eps = endpoints.split(separator: ",").map(String.init)
        let world = eps.count
        let group = try RingGroup(rank: rank, worldSize: world, bind: eps[rank], successor: eps[(rank + 1) % world], generation: 1)
        defer { group.close() }
        let collectives = RingCollectives(group: group)
        let store = ParameterStore(layout: ParameterLayout(job.model))
        store.initialize(seed: job.seed)
        let loop = try TrainingLoop(config: job, dataset: dataset, store: store)
        var start = 0.0
        var reducer: RingGradientReducer?
        defer { reducer?.close() }
        try loop.run(from: 0, to: steps, executor: { phase in
            let engine = StepEngine(layout: store.layout, settings: phase.config.loss,
                                    ownership: Ownership(batch: phase.config.batch, world: world, rank: rank))
            let next = try RingGradientReducer.next(replacing: &reducer, group: group, engine: engine, overlap: overlap)
            return DistributedExecutor(engine: engine, collectives: collectives, reducer: next)
        }, onStep: { o in
            if o.globalStep == warmup { start = MonotonicClock.now() }
        })
        print("steps_per_second \(Double(steps - warmup) / (MonotonicClock.now() - start))")
    }
}

#if canImport(Glibc)
import Glibc
#endif
