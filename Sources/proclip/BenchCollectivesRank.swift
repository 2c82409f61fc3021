import ArgumentParser
import Basics
import Ring
import Tensors
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// One rank of `proclip bench collectives`: binds, tells the launcher its endpoint on standard
/// output, reads its successor's from standard input, joins the ring, then times (or checks)
/// the collectives. Rank 0 reports one `result` (or `check`) line per size.
struct BenchCollectivesRank {
    let config: BenchCollectivesConfig
    let rank: Int

    func run() throws {
        let endpoint = config.transport == .tcp
            ? "tcp://127.0.0.1:*" : "ipc:///tmp/proclip-ring-\(config.session)-\(rank)"
        RingProcessTuning.keepReceiveBuffersResident()
        if config.bindCores {
            let cpu = rank % cpuCount()
            try RingProcessTuning.bind(toCPUs: cpu..<(cpu + 1))
        }
        do {
            let listener = try RingListener(bind: endpoint, options: config.options)
            emit("endpoint \(listener.endpoint)")
            guard let line = readLine(), line.hasPrefix("successor ") else {
                throw ValidationError("rank \(rank): expected 'successor <endpoint>' on standard input")
            }
            let group = try RingGroup(
                listener: listener, rank: rank, worldSize: config.world,
                successor: String(line.dropFirst("successor ".count)), generation: 1)
            emit("ready")
            var path = group.payloadPath
            if group.sharesMemory { path += ", \(config.options.sharedMemorySlots) slots of \(formatBytes(config.options.segmentBytes)) per link" }
            if let problem = listener.sharedMemoryProblem { path += " (no shared memory: \(problem))" }
            path += group.bulkOverDirectLinks ? "; bulk all-reduce over the direct links" : "; bulk all-reduce round the ZeroMQ ring"
            emit("path \(path)")
            for bytes in config.sizes {
                if config.check { try check(group, floats: bytes / 4) } else { try time(group, floats: bytes / 4) }
            }
            group.close()
            emit("done")
        } catch let error as RingError {
            var err = StandardError()
            print("rank \(rank): error: \(error)", to: &err)
            if case .timedOut = error { throw ExitCode(3) }
            throw ExitCode(4)
        }
    }

    /// Times `allReduce` and point-to-point of `floats` elements. A sample is `calls` back-to-back
    /// operations (many for small sizes, so the skew with which ranks leave the barrier does not
    /// count as latency), each on a fresh copy of the input; its time is the slowest rank's
    /// divided by `calls`. The reported time is the median sample.
    private func time(_ group: RingGroup, floats n: Int) throws {
        let w = config.world, bytes = n * 4
        let (samples, calls) = config.sampling(bytes)
        let x = Slab(count: n), source = Slab(count: n), expected = Slab(count: n)
        fillRanked(source, rank: rank, modulus: 7)
        fillRanked(expected, rank: w * (w + 1) / 2 - 1, modulus: 7)
        let times = Slab(count: samples), p2p = Slab(count: samples)
        var mismatches = 0
        for it in 0..<(config.warmup + samples) {
            // A single call's input is prepared outside the timed region; batched small calls
            // refresh theirs inside it (a copy of at most 1 MiB per sample).
            if calls == 1 { memcpy(x.base, source.base, bytes) }
            try group.barrier()
            let t0 = Deadline.now()
            for _ in 0..<calls {
                if calls > 1 { memcpy(x.base, source.base, bytes) }
                try group.allReduce(x.buffer)
            }
            let t = Deadline.now().seconds(since: t0) / Double(calls)
            if it >= config.warmup {
                times.base[it - config.warmup] = Float(t)
                if memcmp(x.base, expected.base, bytes) != 0 {
                    mismatches += countRankedSumMismatches(x, world: w, modulus: 7)
                }
            }
        }
        for it in 0..<(config.warmup + samples) {
            try group.barrier()
            let t0 = Deadline.now()
            for _ in 0..<calls { try group.pointToPoint(x.buffer, from: 0) }
            if it >= config.warmup { p2p.base[it - config.warmup] = Float(Deadline.now().seconds(since: t0) / Double(calls)) }
        }
        // A sample lasts as long as its slowest rank.
        let all = Slab(count: samples * w)
        try group.allGather(local: UnsafeBufferPointer(times.buffer), counts: Array(repeating: samples, count: w), into: all.buffer)
        let bad = Slab([Float(mismatches)])
        try group.allReduce(bad.buffer)
        if rank == 0 {
            let slowest = (0..<samples).map { i in (0..<w).map { all.base[$0 * samples + i] }.max()! }
            emit("result \(bytes) \(median(slowest)) \(median(Array(p2p.buffer))) \(Int(bad.base[0]))")
        }
    }

    /// Runs every collective once on `floats` elements with exact integer values and counts
    /// wrong elements on all ranks.
    private func check(_ group: RingGroup, floats n: Int) throws {
        let w = config.world, r = rank
        var wrong = [Float](repeating: 0, count: 5)

        let x = Slab(count: n)
        fillRanked(x, rank: r, modulus: 7)
        try group.allReduce(x.buffer)
        wrong[0] = Float(countRankedSumMismatches(x, world: w, modulus: 7))

        let counts = unevenCounts(n, world: w)
        let offset = counts[..<r].reduce(0, +)
        let input = Slab(count: n)
        fillRanked(input, rank: r, modulus: 5)
        let mine = Slab(count: counts[r])
        try group.reduceScatter(input: UnsafeBufferPointer(input.buffer), counts: counts, into: mine.buffer)
        let total = Float(w * (w + 1) / 2)
        wrong[1] = Float((0..<counts[r]).filter { mine.base[$0] != total * Float(1 + (offset + $0) % 5) }.count)

        let local = Slab(count: counts[r])
        for j in 0..<counts[r] { local.base[j] = Float(r * 1000 + j % 1000) }
        let gathered = Slab(count: n)
        try group.allGather(local: UnsafeBufferPointer(local.buffer), counts: counts, into: gathered.buffer)
        var g = 0
        for b in 0..<w {
            for j in 0..<counts[b] where gathered.base[g + j] != Float(b * 1000 + j % 1000) { wrong[2] += 1 }
            g += counts[b]
        }

        let root = w - 1
        for i in 0..<n { x.base[i] = r == root ? Float(i % 11 + 1) : -1 }
        try group.broadcast(x.buffer, root: root)
        wrong[3] = Float((0..<n).filter { x.base[$0] != Float($0 % 11 + 1) }.count)

        try group.barrier()
        let summary = Slab(wrong)
        try group.allReduce(summary.buffer)
        if r == 0 {
            for (i, op) in ["all-reduce", "reduce-scatter", "all-gather", "broadcast"].enumerated() {
                emit("check \(op) \(n * 4) \(Int(summary.base[i]))")
            }
        }
    }

    private func emit(_ line: String) {
        print(line)
        fflush(stdout)
    }
}

/// x[i] = (rank + 1) · (1 + i mod m): integers, so every sum is exact.
func fillRanked(_ x: Slab, rank: Int, modulus m: Int) {
    let scale = Float(rank + 1)
    for i in 0..<x.count { x.base[i] = scale * Float(1 + i % m) }
}

/// Elements that differ from Σ_rank (rank + 1) · (1 + i mod m).
func countRankedSumMismatches(_ x: Slab, world w: Int, modulus m: Int) -> Int {
    let total = Float(w * (w + 1) / 2)
    var bad = 0
    for i in 0..<x.count where x.base[i] != total * Float(1 + i % m) { bad += 1 }
    return bad
}

/// `n` elements shared unevenly: rank b weighs b mod 3, so rank 0 (and every third) gets
/// nothing; the remainder goes to the last rank.
func unevenCounts(_ n: Int, world w: Int) -> [Int] {
    let weights = (0..<w).map { $0 % 3 }
    let sum = weights.reduce(0, +)
    guard sum > 0 else { return (0..<w).map { $0 == w - 1 ? n : 0 } }
    var counts = weights.map { n * $0 / sum }
    counts[w - 1] += n - counts.reduce(0, +)
    return counts
}

func median(_ values: [Float]) -> Double {
    let s = values.sorted()
    if s.isEmpty { return 0 }
    return s.count % 2 == 1 ? Double(s[s.count / 2]) : (Double(s[s.count / 2 - 1]) + Double(s[s.count / 2])) / 2
}

/// Standard error as a `TextOutputStream`.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { fputs(string, stderr) }
}
