import ArgumentParser
import Spawn
#if canImport(Glibc)
import Glibc
#endif

/// Starts the ranks of `proclip bench collectives`, wires each to its successor, collects rank
/// 0's lines and prints the report.
struct BenchCollectivesLauncher {
    let config: BenchCollectivesConfig

    func run() throws {
        var config = self.config
        config.session = "\(getpid())"
        let exe = try currentExecutable()
        let ranks = try (0..<config.world).map {
            try ChildProcess(executable: exe, arguments: config.rankArguments + ["--child-rank", "\($0)"])
        }
        var results: [String] = []
        do {
            var endpoints: [String] = []
            for child in ranks {
                guard let line = try child.readLine(timeout: 60), line.hasPrefix("endpoint ") else {
                    throw ValidationError("rank \(endpoints.count) did not report its endpoint")
                }
                endpoints.append(String(line.dropFirst("endpoint ".count)))
            }
            for (r, child) in ranks.enumerated() {
                try child.writeLine("successor \(endpoints[(r + 1) % config.world])")
            }
            // Rank 0 reports; a failing rank makes it stop within the group's timeout.
            while let line = try ranks[0].readLine(timeout: 3600), line != "done" {
                if line.hasPrefix("result ") || line.hasPrefix("check ") || line.hasPrefix("path ") { results.append(line) }
            }
        } catch {
            for child in ranks { child.send(signal: SIGKILL) }
            throw error
        }
        var failed = false
        for (r, child) in ranks.enumerated() {
            let status = try child.wait(timeout: config.options.timeout + 30) ?? {
                child.send(signal: SIGKILL)
                return .signaled(SIGKILL)
            }()
            if status != .exited(0) {
                failed = true
                var err = StandardError()
                print("rank \(r) \(status): \(child.standardError())", to: &err)
            }
        }
        BenchCollectivesReport(config: config, lines: results).print()
        if failed { throw ExitCode(1) }
    }

    private func currentExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw ValidationError("cannot find this executable (/proc/self/exe)") }
        return String(cString: buffer)
    }
}

/// The printed report: a table, or one JSON object per size.
struct BenchCollectivesReport {
    let config: BenchCollectivesConfig
    let lines: [String]

    func print() {
        if config.check { return printChecks() }
        let w = Double(config.world)
        if !config.json {
            let path = lines.first { $0.hasPrefix("path ") }.map { " (payloads in " + $0.dropFirst(5) + ")" } ?? ""
            Swift.print("all-reduce, \(config.world) processes, \(config.transport.rawValue)\(path), segment \(formatBytes(config.options.segmentBytes)), \(config.options.streams) stream(s)\(config.bindCores ? ", one core per rank" : ""); GB/s = 1e9 bytes/s")
            Swift.print("      bytes      time   algbw GB/s   busbw GB/s   p2p GB/s   busbw/p2p   correct")
        }
        for line in lines {
            let f = line.split(separator: " ")
            guard f.count == 5, let bytes = Int(f[1]), let seconds = Double(f[2]), let p2pSeconds = Double(f[3]),
                  let wrong = Int(f[4]) else { continue }
            let algbw = seconds > 0 ? Double(bytes) / seconds / 1e9 : 0
            let busbw = w > 1 ? algbw * 2 * (w - 1) / w : algbw
            let p2p = p2pSeconds > 0 ? Double(bytes) / p2pSeconds / 1e9 : 0
            if config.json {
                Swift.print("{\"bytes\": \(bytes), \"seconds\": \(seconds), \"algbw_gbs\": \(algbw), \"busbw_gbs\": \(busbw), \"p2p_gbs\": \(p2p), \"correct\": \(wrong == 0), \"world\": \(config.world), \"transport\": \"\(config.transport.rawValue)\"}")
            } else {
                Swift.print(
                    pad(formatBytes(bytes), 11) + pad(formatSeconds(seconds), 10) + pad(fmt(algbw), 13) + pad(fmt(busbw), 13)
                        + pad(fmt(p2p), 11) + pad(p2p > 0 ? fmt(busbw / p2p) : "-", 12) + pad(wrong == 0 ? "yes" : "NO (\(wrong))", 10))
            }
        }
    }

    private func printChecks() {
        for line in lines {
            let f = line.split(separator: " ")
            guard f.count == 4, let bytes = Int(f[2]), let wrong = Int(f[3]) else { continue }
            if config.json {
                Swift.print("{\"op\": \"\(f[1])\", \"bytes\": \(bytes), \"correct\": \(wrong == 0), \"wrong_elements\": \(wrong)}")
            } else {
                Swift.print("\(f[1]) \(formatBytes(bytes)): " + (wrong == 0 ? "correct" : "\(wrong) wrong elements"))
            }
        }
    }
}

func formatBytes(_ n: Int) -> String {
    if n >= 1 << 20, n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
    if n >= 1 << 10, n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
    return "\(n) B"
}

private func formatSeconds(_ s: Double) -> String {
    s < 1e-3 ? fmt(s * 1e6, 1) + " µs" : fmt(s * 1e3, 2) + " ms"
}

private func fmt(_ x: Double, _ digits: Int = 3) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
}

private func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
}
