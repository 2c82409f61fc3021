import ArgumentParser
import Control
import FoundationEssentials
import Job
import Trainer

#if canImport(Glibc)
import Glibc
#endif

/// `proclip status`: what a running job is doing.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running job: phase, progress, losses, rates, workers and recent events.")

    @Option(help: "The coordinator's control endpoint.") var coordinator: String = "tcp://127.0.0.1:29500"
    @Flag(help: "Print the status as JSON.") var json = false
    @Option(help: "Refresh every SECONDS until the job ends (Ctrl-C to leave).") var watch: Double?
    @Option(help: "Seconds to wait for an answer.") var timeout: Double = 2
    @OptionGroup(title: "Security (status.key or worker.key; without keys only an --insecure job answers)") var security: SecurityOptions

    func run() throws {
        let client = try StatusClient(endpoint: coordinator, security: try security.resolve(.status) { .insecure })
        let tty = isatty(1) != 0
        repeat {
            let report: StatusReport
            do {
                report = try client.query(timeout: timeout)
            } catch {
                fputs("proclip status: \(error)\n", stderr)
                throw ExitCode(1)
            }
            let text = json ? try jsonText(report) : StatusText.render(report)
            if watch != nil && tty { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            print(text)
            fflush(stdout)
            if let w = watch {
                if report.state == .done || report.state == .failed { break }
                usleep(UInt32(max(w, 0.1) * 1e6))
            }
        } while watch != nil
    }

    func jsonText(_ r: StatusReport) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(r), as: UTF8.self)
    }
}

/// The status report as a few lines and a worker table.
enum StatusText {
    static func render(_ r: StatusReport) -> String {
        let p = r.phase
        let fraction = r.totalSteps > 0 ? Double(r.step) / Double(r.totalSteps) : 0
        var lines: [String] = []
        lines.append("job \(r.job) · \(r.state.rawValue) · phase \(p.index + 1)/\(p.count) '\(p.name)' (\(p.kind)) · epoch \(p.epoch + 1) · "
                     + "step \(r.step)/\(r.totalSteps) \(ProgressLine.bar(fraction)) \(Int(fraction * 100))% · "
                     + "elapsed \(ProgressLine.duration(r.elapsedSeconds)) · ETA \(r.etaSeconds.map { ProgressLine.duration($0) } ?? "--:--") · "
                     + "\(r.samplesPerSecond.map { compact($0, digits: 3) } ?? "-") samples/s")
        let loss = r.loss.keys.sorted().map { k in "\(k) \(compact(r.loss[k]!)) (avg \(r.lossSmoothed[k].map { compact($0) } ?? "-"))" }
        let lr = r.lr.keys.sorted().map { "\($0) \(compact(r.lr[$0]!, digits: 3))" }
        lines.append("loss: " + (loss.isEmpty ? "-" : loss.joined(separator: ", ")) + " · lr: " + (lr.isEmpty ? "-" : lr.joined(separator: ", "))
                     + " · logit scale \(r.logitScale.map { compact($0) } ?? "-")")
        lines.append("world \(r.worldSize) · generation \(r.generation) · last checkpoint: "
                     + (r.lastCheckpoint.map { "\($0) (step \(r.lastCheckpointStep ?? 0))" } ?? "none")
                     + (r.droppedMessages > 0 ? " · \(r.droppedMessages) malformed message(s) dropped" : "")
                     + (r.security == "curve" ? " · security: curve" : " · security: INSECURE (--insecure)"))
        lines.append("")
        lines.append(row(["rank", "worker", "host", "pid", "state", "step", "heartbeat", "compute", "comm", "all-reduce"]))
        for w in r.workers {
            lines.append(row([w.rank.map(String.init) ?? "-", "\(w.id)", w.host, "\(w.pid)", w.state.rawValue, "\(w.step)",
                              "\(fixed(w.heartbeatAgeSeconds, 1)) s", "\(fixed(w.computeSeconds * 1000, 1)) ms",
                              "\(fixed(w.commSeconds * 1000, 1)) ms", "\(fixed(w.allreduceGBs, 2)) GB/s"]))
        }
        if !r.events.isEmpty {
            lines.append("")
            lines.append("events:")
            for e in r.events.suffix(8) { lines.append("  [\(fixed(e.time, 1)) s] \(e.text)") }
        }
        return lines.joined(separator: "\n")
    }

    static let widths = [5, 7, 16, 8, 10, 7, 10, 10, 10, 11]

    static func row(_ cells: [String]) -> String {
        zip(cells, widths).map { $0.count >= $1 ? $0 + " " : $0 + String(repeating: " ", count: $1 - $0.count) }.joined()
    }
}
