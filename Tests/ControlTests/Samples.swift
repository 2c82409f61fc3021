import Control
import Tensors
import Foundation

/// The project's SplitMix64 drives the fuzz runs (reproducible from the seed).
typealias Rng = SplitMix64

extension SplitMix64: RandomNumberGenerator {}

extension SplitMix64 {    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &self) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func double(_ r: ClosedRange<Double>) -> Double { Double.random(in: r, using: &self) }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &self) } }
}

/// Random valid messages of every type, and per type the field values that must be refused.
enum Samples {
    static let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789-_. éß漢")

    static func word(_ g: inout Rng, _ n: ClosedRange<Int> = 1...12) -> String {
        String((0..<g.int(n)).map { _ in g.pick(letters) })
    }

    static func endpoint(_ g: inout Rng) -> String {
        g.chance(0.7) ? "tcp://10.0.\(g.int(0...255)).\(g.int(1...254)):\(g.int(1024...65535))" : "ipc:///tmp/proclip-\(g.int(1...99999))"
    }

    static func path(_ g: inout Rng) -> String { "/runs/\(word(&g))/checkpoints/step-\(g.int(0...99999)).lz4" }

    static func hash(_ g: inout Rng) -> String { String(g.next(), radix: 16) }

    static func step(_ g: inout Rng) -> Int { g.chance(0.1) ? g.int(0...1) : g.int(0...1_000_000) }

    static func seconds(_ g: inout Rng) -> Double { g.chance(0.1) ? 0 : g.double(0...100) }

    static func terms(_ g: inout Rng, signed: Bool) -> [String: Double] {
        var out: [String: Double] = [:]
        for _ in 0..<g.int(0...4) { out[word(&g)] = signed ? g.double(-10...10) : g.double(0...1) }
        return out
    }

    static func hello(_ g: inout Rng) -> WorkerHello {
        WorkerHello(version: ProclipInfo.version, host: g.chance(0.5) ? "10.0.0.\(g.int(1...254))" : word(&g), pid: Int32(g.int(1...4_000_000)),
                    threads: g.int(1...64), dataEndpoint: endpoint(&g), configHash: g.chance(0.5) ? hash(&g) : nil)
    }

    static func ready(_ g: inout Rng) -> Ready { Ready(workerID: UInt64(g.int(1...1000)), manifestHash: hash(&g)) }

    static func welcome(_ g: inout Rng) -> Welcome {
        Welcome(workerID: UInt64(g.int(1...1000)), config: "name: \(word(&g))\nseed: \(g.int(0...9))\n", configHash: hash(&g),
                heartbeatSeconds: g.double(0.01...10))
    }

    static func policy(_ g: inout Rng) -> CheckpointPolicy {
        CheckpointPolicy(directory: g.chance(0.3) ? "" : "/shared/\(word(&g))", every: g.int(0...1000), keep: g.int(0...10))
    }

    static func assignment(_ g: inout Rng) -> Assignment {
        let world = g.int(1...6)
        let total = g.int(0...100_000)
        let start = g.int(0...total)
        return Assignment(generation: UInt64(g.int(1...50)), rank: g.int(0...world - 1), world: world,
                          endpoints: (0..<world).map { _ in endpoint(&g) }, startStep: start, resume: g.chance(0.5) ? path(&g) : nil,
                          leaseEnd: g.int(start...total), totalSteps: total, checkpoint: policy(&g))
    }

    static func lease(_ g: inout Rng) -> Lease { Lease(generation: UInt64(g.int(0...50)), leaseEnd: step(&g)) }

    static func checkpointNow(_ g: inout Rng) -> CheckpointNow { CheckpointNow(generation: UInt64(g.int(1...50)), reason: word(&g, 0...40)) }

    static func heartbeat(_ g: inout Rng) -> Heartbeat {
        Heartbeat(workerID: UInt64(g.int(1...1000)), generation: UInt64(g.int(0...50)), step: step(&g), state: g.pick(WorkerState.allCases),
                  computeSeconds: seconds(&g), commSeconds: seconds(&g), allreduceGBs: g.double(0...20))
    }

    static func stepReport(_ g: inout Rng) -> StepReport {
        StepReport(generation: UInt64(g.int(1...50)), step: g.int(1...1_000_000), phase: g.int(0...5), epoch: g.int(0...100),
                   loss: terms(&g, signed: true), lr: terms(&g, signed: false), logitScale: g.double(-5...5), gradNorm: g.double(0...100),
                   samplesPerSecond: g.double(0...10000), stepSeconds: seconds(&g), json: "{\"step\":\(g.int(1...1000))}")
    }

    static func batch(_ g: inout Rng) -> [StepReport] { (0..<g.int(1...3)).map { _ in stepReport(&g) } }

    static func failure(_ g: inout Rng) -> FailureReport {
        FailureReport(workerID: UInt64(g.int(1...1000)), generation: UInt64(g.int(1...50)), step: step(&g), reason: word(&g, 0...60),
                      fatal: g.chance(0.5))
    }

    static func refusal(_ g: inout Rng) -> Refusal { Refusal(reason: word(&g, 1...60)) }

    static func paramsHeader(_ g: inout Rng) -> ParamsHeader {
        let chunks = g.int(1...40)
        let size = ControlLimits.paramsChunk
        return ParamsHeader(step: step(&g), phase: g.int(0...5), final: g.chance(0.5), bytes: g.int(((chunks - 1) * size + 1)...(chunks * size)),
                            chunks: chunks)
    }

    static func checkpointWritten(_ g: inout Rng) -> CheckpointWritten { CheckpointWritten(step: step(&g), path: path(&g)) }
    static func checkpointFailed(_ g: inout Rng) -> CheckpointFailed {
        CheckpointFailed(step: step(&g), path: path(&g), reason: word(&g, 0...60))
    }

    static func leave(_ g: inout Rng) -> Leave { Leave(workerID: UInt64(g.int(1...1000)), reason: word(&g, 0...30)) }

    static func stop(_ g: inout Rng) -> Stop { Stop(reason: word(&g, 1...30)) }

    static func bound(_ g: inout Rng) -> Bound { Bound(workerID: UInt64(g.int(1...1000)), generation: UInt64(g.int(1...50))) }

    static func go(_ g: inout Rng) -> Go { Go(generation: UInt64(g.int(1...50))) }

    static func phase(_ g: inout Rng) -> StatusReport.Phase {
        let count = g.int(1...4), steps = g.int(0...1000)
        return StatusReport.Phase(index: g.int(0...count - 1), count: count, name: word(&g), kind: g.pick(["inherit", "contrast"]),
                                  epoch: g.int(0...10), step: g.int(0...steps), steps: steps)
    }

    static func worker(_ g: inout Rng) -> StatusReport.Worker {
        StatusReport.Worker(id: UInt64(g.int(1...1000)), rank: g.chance(0.7) ? g.int(0...7) : nil, host: word(&g), pid: Int32(g.int(1...99999)),
                            state: g.pick(MemberState.allCases), step: step(&g), heartbeatAgeSeconds: seconds(&g),
                            computeSeconds: seconds(&g), commSeconds: seconds(&g), allreduceGBs: g.double(0...5))
    }

    static func event(_ g: inout Rng) -> StatusReport.Event { StatusReport.Event(time: seconds(&g), text: word(&g, 0...40)) }

    static func status(_ g: inout Rng) -> StatusReport {
        StatusReport(job: word(&g), state: g.pick(JobState.allCases), configHash: hash(&g), phase: phase(&g), step: step(&g),
                     totalSteps: step(&g), elapsedSeconds: seconds(&g), etaSeconds: g.chance(0.5) ? seconds(&g) : nil,
                     samplesPerSecond: g.chance(0.5) ? seconds(&g) : nil, loss: terms(&g, signed: true), lossSmoothed: terms(&g, signed: true),
                     lr: terms(&g, signed: false), logitScale: g.chance(0.5) ? g.double(1...100) : nil, worldSize: g.int(0...8),
                     generation: UInt64(g.int(0...50)), lastCheckpoint: g.chance(0.5) ? path(&g) : nil,
                     lastCheckpointStep: g.chance(0.5) ? step(&g) : nil, workers: (0..<g.int(0...2)).map { _ in worker(&g) },
                     events: (0..<g.int(0...2)).map { _ in event(&g) }, droppedMessages: g.int(0...100))
    }

    static let long4K = "\"" + String(repeating: "r", count: ControlLimits.maxReason + 1) + "\""
    static let manyTerms = "{" + (0...ControlLimits.maxTerms).map { "\"t\($0)\":1" }.joined(separator: ",") + "}"

    /// Field values each type must refuse: (path, raw JSON text). "$path", "$path+1" and "$path-1"
    /// stand for another field's value in the sample (for the relations between fields).
    static let mustRefuse: [String: [(String, String)]] = [
        "WorkerHello": [("pid", "0"), ("pid", "-1"), ("threads", "0"), ("threads", "4097"), ("host", "\"\""),
                        ("host", "\"" + String(repeating: "h", count: 256) + "\""), ("version", "\"\""),
                        ("dataEndpoint", "\"udp://x:1\""), ("dataEndpoint", "\"tcp://\""), ("dataEndpoint", "\"\""), ("configHash", "\"\""),
                        ("host", "\"a\\u0000b\"")],
        "Ready": [("workerID", "0"), ("manifestHash", "\"\""), ("workerID", "-1")],
        "Welcome": [("workerID", "0"), ("heartbeatSeconds", "0"), ("heartbeatSeconds", "-1"), ("heartbeatSeconds", "3601"),
                    ("configHash", "\"\""), ("config", "\"\"")],
        "Assignment": [("generation", "0"), ("world", "0"), ("world", "4097"), ("rank", "-1"), ("rank", "4096"), ("rank", "$world"),
                       ("leaseEnd", "$totalSteps+1"), ("leaseEnd", "$startStep-1"),
                       ("startStep", "$totalSteps+1"), ("totalSteps", "$startStep-1"), ("endpoints", "[]"),
                       ("endpoints", "[\"x\"]"), ("startStep", "-1"), ("leaseEnd", "-1"), ("totalSteps", "-1"), ("totalSteps", "1099511627777"),
                       ("resume", "\"relative/path\""), ("resume", "\"\""), ("checkpoint.keep", "-1"), ("checkpoint.every", "-1"),
                       ("checkpoint.directory", "\"relative\""), ("checkpoint", "null")],
        "CheckpointPolicy": [("every", "-1"), ("keep", "-1"), ("keep", "1000001"), ("directory", "\"relative\"")],
        "Lease": [("leaseEnd", "-1"), ("leaseEnd", "1099511627777"), ("generation", "-1")],
        "CheckpointNow": [("generation", "0"), ("reason", long4K)],
        "Heartbeat": [("workerID", "0"), ("step", "-1"), ("state", "\"bogus\""), ("state", "\"\""), ("computeSeconds", "-1"),
                      ("commSeconds", "-0.5"), ("allreduceGBs", "-1e-300"), ("computeSeconds", "1e400")],
        "StepReport": [("generation", "0"), ("step", "0"), ("step", "-5"), ("phase", "-1"), ("phase", "1024"), ("epoch", "-1"),
                       ("gradNorm", "-1"), ("stepSeconds", "-1"), ("samplesPerSecond", "-1"), ("json", "\"\""), ("loss", manyTerms),
                       ("lr", "{\"a\":-1}"), ("loss", "{\"\":1}")],
        "[StepReport]": [("", "[]"), ("[0].step", "0"), ("[0].generation", "0"), ("[0]", "{}")],
        "FailureReport": [("workerID", "0"), ("generation", "0"), ("step", "-1"), ("reason", long4K), ("fatal", "1"), ("fatal", "null")],
        "Refusal": [("reason", long4K)],
        "ParamsHeader": [("chunks", "$chunks+1"), ("chunks", "$chunks-1"), ("bytes", "$chunks-1"), ("chunks", "0"), ("chunks", "65537"),
                         ("bytes", "0"), ("bytes", "-1"), ("bytes", "99999999999999"),
                         ("step", "-1"), ("phase", "-1")],
        "CheckpointWritten": [("step", "-1"), ("path", "\"\""), ("path", "\"relative\"")],
        "CheckpointFailed": [("step", "-1"), ("path", "\"\""), ("path", "\"relative\""), ("reason", long4K)],
        "Leave": [("workerID", "0"), ("reason", long4K)],
        "Stop": [("reason", long4K)],
        "StatusRequest": [("", "[]"), ("", "1"), ("", "null"), ("", "--1"), ("", "\"x\"")],
        "Bound": [("workerID", "0"), ("generation", "0")],
        "Go": [("generation", "0"), ("generation", "-1")],
        "StatusReport": [("state", "\"bogus\""), ("job", "\"\""), ("worldSize", "-1"), ("worldSize", "5000"), ("droppedMessages", "-1"),
                         ("phase.count", "0"), ("phase.index", "-1"), ("phase.index", "$phase.count"), ("phase.step", "$phase.steps+1"),
                         ("phase.step", "-1"), ("elapsedSeconds", "-1"), ("etaSeconds", "-1"),
                         ("lastCheckpoint", "\"relative\""), ("lastCheckpointStep", "-1"), ("step", "-1"), ("totalSteps", "-1")],
        "StatusReport.Phase": [("index", "$count"), ("step", "$steps+1"), ("count", "$index"), ("count", "0"), ("index", "2000"), ("step", "-1"),
                               ("steps", "-1"), ("name", "\"\""), ("epoch", "-1")],
        "StatusReport.Worker": [("id", "0"), ("pid", "0"), ("rank", "-1"), ("host", "\"\""), ("state", "\"x\""), ("heartbeatAgeSeconds", "-1"),
                                ("step", "-1")],
        "StatusReport.Event": [("time", "-1"), ("text", "\"" + String(repeating: "e", count: ControlLimits.maxEventText + 1) + "\"")],
    ]

    /// Replacement values for any field: out of range, huge, negative, NaN-like, of the wrong type.
    static let replacements: [String] = [
        "-1", "0", "1", "-0", "0.5", "-0.0", "1e308", "-1e308", "1e400", "-1e400", "4294967296", "2147483648", "1099511627777",
        "9223372036854775807", "-9223372036854775808", "9223372036854775808", "18446744073709551615", "18446744073709551616",
        "99999999999999999999999999999", "NaN", "Infinity", "-Infinity", "nan", "inf", "0x10", "+1", ".5", "1.", "01", "--1",
        "\"\"", "\"NaN\"", "\"1\"", "\"tcp://\"", "\"ipc://x\"", "\"/abs\"", "\"rel/path\"", "\"running\"", "\"bogus\"", "\"\\u0000\"",
        "\"" + String(repeating: "x", count: 5000) + "\"", "true", "false", "null", "[]", "[1]", "[\"tcp://a:1\"]", "[null]", "{}",
        "{\"x\":1}", "{\"x\":\"y\"}", "[[]]", "{\"\":null}",
    ]
}
