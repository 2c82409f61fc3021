import ArgumentParser
import Ring

/// `proclip bench collectives`: ring all-reduce speed against the transport's own
/// point-to-point throughput, measured in the same run with the same processes.
///
/// Starts `--world` local processes (this executable again, in a hidden per-rank mode), joins
/// them in a ring over tcp loopback or ipc, and per size prints the median time of
/// `allReduce`, algbw = bytes/time, busbw = algbw · 2(W−1)/W, and p2p: one rank streaming the
/// same bytes to its successor. GB/s are 10⁹ bytes per second.
struct BenchCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collectives",
        abstract: "Ring all-reduce busbw over local processes, beside point-to-point throughput.")

    @Option(help: "Number of processes in the ring.")
    var world: Int = 4

    @Option(help: "Transport between the processes: tcp (loopback) or ipc (Unix sockets, payloads in shared memory).")
    var transport: LocalTransport = .tcp

    @Option(help: "Buffer sizes in bytes, comma-separated, with K/M/G suffixes (powers of 1024).")
    var sizes: String = "4K,64K,1M,16M,64M"

    @Option(help: "Timed samples per size (default: from 5 at 64 MiB up to 30 for small sizes).")
    var reps: Int?

    @Option(help: "Untimed samples per size before timing.")
    var warmup: Int = 2

    @Option(help: "Segment size in bytes (K/M suffixes allowed).")
    var segmentBytes: String = "512K"

    @Option(help: "All-reduces up to this size use the latency-bound algorithm (K/M suffixes; 0: never).")
    var smallBytes: String = "256K"

    @Option(help: "Largest world that connects every rank to every other for latency-bound operations; larger ones link ring neighbours only, for bulk traffic (0: everything round the ZeroMQ ring).")
    var directMaxWorld: Int = RingOptions().directMaxWorld

    @Flag(inversion: .prefixedNo, help: "Run large all-reduces, all-gathers and reduce-scatters over the direct links (else round the ZeroMQ ring).")
    var directBulk = RingOptions().directBulk

    @Option(help: "Shared-memory payload slots per link over ipc (0: payloads inside ZeroMQ messages).")
    var sharedMemorySlots: Int = RingOptions().sharedMemorySlots

    @Option(help: "Connections per ring neighbour.")
    var streams: Int = 1

    @Option(help: "Kernel socket buffer size in bytes per connection (K/M suffixes; default: the OS's).")
    var kernelBuffer: String?

    @Option(help: "Bind each rank to a CPU: core (rank r on CPU r mod CPUs, as mpirun --bind-to core) or none.")
    var bind: BenchBinding = .core

    @Option(help: "Microseconds a receive polls before sleeping.")
    var spin: Int = RingOptions().spinMicroseconds

    @Option(help: "Longest wait for any one message, in seconds.")
    var timeout: Double = 30

    @Flag(help: "Verify every collective (all-reduce, reduce-scatter and all-gather with uneven counts, broadcast, barrier) instead of timing.")
    var check = false

    @Flag(help: "Print one JSON object per size instead of a table.")
    var json = false

    @Option(help: .hidden)
    var childRank: Int?

    @Option(help: .hidden)
    var session: String?

    func validate() throws {
        guard (1...64).contains(world) else { throw ValidationError("--world must be in 1…64") }
        guard (1...16).contains(streams) else { throw ValidationError("--streams must be in 1…16") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be ≥ 0") }
        if let reps, reps < 1 { throw ValidationError("--reps must be ≥ 1") }
        let parsed = try parsedSizes()
        guard !parsed.isEmpty, parsed.allSatisfy({ $0 >= 0 && $0 % 4 == 0 }) else {
            throw ValidationError("--sizes must be multiples of 4 bytes (float32)")
        }
        _ = try ringOptions()
    }

    func parsedSizes() throws -> [Int] {
        try sizes.split(separator: ",").map { try parseBytes(String($0), flag: "--sizes") }
    }

    func ringOptions() throws -> RingOptions {
        var options = RingOptions()
        options.segmentBytes = try parseBytes(segmentBytes, flag: "--segment-bytes")
        options.streams = streams
        options.kernelBufferBytes = try kernelBuffer.map { try parseBytes($0, flag: "--kernel-buffer") } ?? -1
        options.timeout = timeout
        options.spinMicroseconds = spin
        options.smallAllReduceBytes = try parseBytes(smallBytes, flag: "--small-bytes")
        options.directMaxWorld = directMaxWorld
        options.directBulk = directBulk
        options.sharedMemorySlots = sharedMemorySlots
        options.connectTimeout = max(timeout, 30)
        do { try options.validate() } catch { throw ValidationError("\(error)") }
        return options
    }

    func run() throws {
        let config = BenchCollectivesConfig(
            world: world, transport: transport, sizes: try parsedSizes(), reps: reps, warmup: warmup,
            options: try ringOptions(), check: check, json: json, session: session ?? "", bindCores: bind == .core)
        if let childRank {
            try BenchCollectivesRank(config: config, rank: childRank).run()
        } else {
            try BenchCollectivesLauncher(config: config).run()
        }
    }
}

/// Where the benchmark's ranks run.
enum BenchBinding: String, ExpressibleByArgument, CaseIterable {
    case core, none
}

/// Transports between processes on one host (the benchmarks, `launch`).
enum LocalTransport: String, ExpressibleByArgument, CaseIterable {
    case tcp, ipc
}

/// Everything one benchmark run needs, handed from the flags to the launcher and each rank.
struct BenchCollectivesConfig {
    var world: Int
    var transport: LocalTransport
    var sizes: [Int]
    var reps: Int?
    var warmup: Int
    var options: RingOptions
    var check: Bool
    var json: Bool
    var session: String
    var bindCores: Bool

    /// The flags that recreate this configuration in a rank process.
    var rankArguments: [String] {
        var args = [
            "bench", "collectives", "--world", "\(world)", "--transport", transport.rawValue,
            "--sizes", sizes.map(String.init).joined(separator: ","), "--warmup", "\(warmup)",
            "--segment-bytes", "\(options.segmentBytes)", "--streams", "\(options.streams)",
            "--timeout", "\(options.timeout)", "--spin", "\(options.spinMicroseconds)",
            "--small-bytes", "\(options.smallAllReduceBytes)", "--direct-max-world", "\(options.directMaxWorld)",
            "--shared-memory-slots", "\(options.sharedMemorySlots)", "--session", session,
        ]
        if let reps { args += ["--reps", "\(reps)"] }
        if options.kernelBufferBytes > 0 { args += ["--kernel-buffer", "\(options.kernelBufferBytes)"] }
        if check { args.append("--check") }
        args.append(options.directBulk ? "--direct-bulk" : "--no-direct-bulk")
        args += ["--bind", bindCores ? "core" : "none"]
        return args
    }

    /// Timed samples for `bytes`, and back-to-back calls per sample: up to 64 calls for small
    /// sizes (1 MiB per sample), up to 30 samples (256 MiB in all), at least 5.
    /// Scripts/mpi_allreduce_bench.c uses the same rule.
    func sampling(_ bytes: Int) -> (samples: Int, calls: Int) {
        let b = max(bytes, 4)
        let calls = max(1, min(64, (1 << 20) / b))
        return (reps ?? max(5, min(30, (256 << 20) / (b * calls))), calls)
    }
}

/// Parses `64M`, `512K`, `4096`.
func parseBytes(_ text: String, flag: String) throws -> Int {
    let t = text.trimmingCharacters(in: " ")
    let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
    var digits = Substring(t), scale = 1
    if let last = t.last?.uppercased().first, let u = units[last] {
        digits = t.dropLast()
        scale = u
    }
    guard let n = Int(digits), n >= 0 else { throw ValidationError("\(flag): cannot read '\(text)' as a size") }
    return n * scale
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
