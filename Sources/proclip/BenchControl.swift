import ArgumentParser
import Basics
import Control
import Foundation
import Wire

/// `proclip bench control`: what CURVE costs the control plane — a status request's round trip
/// over an established connection, and a new client's first answer (connect, handshake, ZAP,
/// request, reply: what one `proclip status` pays) — with and without CURVE, in alternating
/// rounds of the same run.
struct BenchControl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Control-plane latency of a status request with CURVE (and ZAP) against without, same run.")

    @Option(help: "Round trips per round.") var requests: Int = 2000
    @Option(help: "New clients per round (each: connect, handshake, one request).") var clients: Int = 50
    @Option(help: "Alternating rounds per mode.") var rounds: Int = 3
    @Option(help: "Reply payload bytes (a status report of a few workers is 3–6 KB).") var replyBytes: Int = 4096

    func validate() throws {
        if requests < 10 || clients < 1 || rounds < 1 || replyBytes < 1 { throw ValidationError("--requests ≥ 10, --clients, --rounds, --reply-bytes ≥ 1") }
    }

    func run() throws {
        let keys = try JobKeys.generate()
        let modes: [(String, ControlSecurity, ControlSecurity)] = [
            ("plain", .insecure, .insecure),
            ("curve", .curve(keys[0]), .curve(keys[2])),
        ]
        var roundTrip: [String: [Double]] = [:], firstAnswer: [String: [Double]] = [:]
        for _ in 0..<rounds {
            for (name, server, client) in modes {
                let (rt, first) = try measure(server: server, client: client)
                roundTrip[name, default: []] += rt
                firstAnswer[name, default: []] += first
            }
        }
        print("control plane: status request (\(StatusRequestSize.bytes) B) → reply (\(replyBytes) B) over tcp loopback, \(rounds) alternating round(s)")
        print("  mode     round trip p50   p99        new client's first answer p50   p99")
        for (name, _, _) in modes {
            let r = roundTrip[name]!.sorted(), f = firstAnswer[name]!.sorted()
            print("  " + name.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + String(format: " %8.1f µs  %8.1f µs       %8.1f µs  %8.1f µs", q(r, 0.5), q(r, 0.99), q(f, 0.5), q(f, 0.99)))
        }
        let rp = q(roundTrip["curve"]!.sorted(), 0.5) / q(roundTrip["plain"]!.sorted(), 0.5)
        let fp = q(firstAnswer["curve"]!.sorted(), 0.5) / q(firstAnswer["plain"]!.sorted(), 0.5)
        print(String(format: "  curve ÷ plain: round trip %.2f×, first answer %.2f×", rp, fp))
    }

    private func q(_ sorted: [Double], _ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1e6 }

    /// One round: a ROUTER answering every request with `replyBytes`, one long-lived client
    /// timing `requests` round trips, then `clients` new clients timing their first answer.
    private func measure(server: ControlSecurity, client: ControlSecurity) throws -> ([Double], [Double]) {
        let context = try ZmqContext()
        let zap = try server.coordinatorAuthenticator(context: context)
        let router = try context.socket(.router)
        try server.configureServer(router)
        try router.set(.linger(milliseconds: 0))
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint()
        let stop = Locked(false)
        let reply = [UInt8](repeating: 0x7B, count: replyBytes)
        let answering = JoinableThread("bench control server") {
            let channel = ControlSocket(socket: router, accepting: ControlLimits.coordinatorAccepts)
            while !stop.withLock({ $0 }) {
                guard (try? channel.wait(milliseconds: 20)) == true else { continue }
                while let m = try? channel.receive() {
                    _ = try? channel.sendRaw(.statusReply, reply, to: m.peer)
                }
            }
            router.close()
        }
        defer {
            stop.withLock { $0 = true }
            answering.join()
            zap?.stop()
            context.terminate()
        }
        func ask(_ channel: ControlSocket) throws {
            try channel.send(.statusRequest, StatusRequest())
            let deadline = Deadline.after(seconds: 10)
            while !deadline.hasPassed {
                if try channel.wait(milliseconds: 100), try channel.receive() != nil { return }
            }
            throw WireError.timedOut("no reply from the bench server within 10 s")
        }
        func newClient() throws -> ControlSocket {
            let s = try context.socket(.dealer)
            try s.set(.linger(milliseconds: 0))
            try s.set(.maxMessageSize(replyBytes + 4096))
            try client.configureClient(s)
            try s.connect(endpoint)
            return ControlSocket(socket: s, accepting: [(.statusReply, replyBytes)])
        }
        let steady = try newClient()
        defer { steady.socket.close() }
        for _ in 0..<20 { try ask(steady) }
        var roundTrips: [Double] = []
        for _ in 0..<requests {
            let t0 = MonotonicClock.now()
            try ask(steady)
            roundTrips.append(MonotonicClock.now() - t0)
        }
        var firsts: [Double] = []
        for _ in 0..<clients {
            let t0 = MonotonicClock.now()
            let c = try newClient()
            try ask(c)
            firsts.append(MonotonicClock.now() - t0)
            c.socket.close()
        }
        return (roundTrips, firsts)
    }
}

/// The size of a status request's payload.
enum StatusRequestSize {
    static let bytes = (try? JSONEncoder().encode(StatusRequest()).count) ?? 2
}
