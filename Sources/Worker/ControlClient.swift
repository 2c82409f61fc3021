import Control
import Trainer
import Foundation
import Tensors
import Wire
import Basics

/// The worker's control thread: owns the DEALER socket to the coordinator, registers, turns
/// incoming orders into mailbox deliveries, sends heartbeats every period and drains the outbox.
/// Nothing on it waits for the compute thread, and nothing on the compute thread waits for it
/// except new orders.
final class ControlClient: @unchecked Sendable {
    let endpoint: String
    let hello: WorkerHello
    let mailbox: Mailbox
    private let context: ZmqContext
    private var thread: Thread?
    private let done = Monitor()
    private var finished = false
    private var stopRequested = false
    /// Give up when the coordinator has not been reachable for this long.
    let silenceLimit: Double

    init(endpoint: String, hello: WorkerHello, mailbox: Mailbox, silenceLimit: Double = 120) throws {
        self.endpoint = endpoint
        self.hello = hello
        self.mailbox = mailbox
        self.silenceLimit = silenceLimit
        context = try ZmqContext(ioThreads: 1)
    }

    func start() {
        let t = Thread { [self] in
            do { try run() } catch { mailbox.deliver(controlError: "control connection to \(endpoint): \(error)") }
            done.withLock { finished = true; done.broadcast() }
        }
        t.name = "proclip-control"
        thread = t
        t.start()
    }

    /// Asks the thread to send what is queued and end; waits up to `seconds`.
    func finish(within seconds: Double) {
        done.withLock { stopRequested = true }
        let deadline = Deadline.after(seconds: seconds)
        done.withLock {
            while !finished { if !done.wait(until: deadline) { break } }
        }
        context.terminate()
    }

    private func run() throws {
        let socket = try context.socket(.dealer)
        defer { socket.close() }
        try socket.set(.linger(milliseconds: 2000))
        try socket.set(.heartbeat(interval: 1000, timeout: 5000, ttl: 5000))
        try socket.set(.reconnectInterval(100, max: 2000))
        try socket.connect(endpoint)
        let channel = ControlSocket(socket: socket, accepting: ControlLimits.workerAccepts)
        try channel.send(.register, hello)
        var lastHeartbeat = 0.0
        var lastHeard = MonotonicClock.now()
        var period = 1.0
        while true {
            let stopping = done.withLock { stopRequested }
            if stopping && mailbox.outboxIsEmpty { return }
            if try channel.wait(milliseconds: 20) {
                while let m = try channel.receive() {
                    lastHeard = MonotonicClock.now()
                    switch m.header.type {
                    case .welcome:
                        if let w = channel.decode(Welcome.self, from: m) {
                            period = w.heartbeatSeconds
                            mailbox.deliver(welcome: w)
                        }
                    case .refuse:
                        if let r = channel.decode(Refusal.self, from: m) { mailbox.deliver(refusal: r.reason) }
                    case .assign:
                        if let a = channel.decode(Assignment.self, from: m) { mailbox.deliver(assignment: a) }
                    case .checkpointNow:
                        if let c = channel.decode(CheckpointNow.self, from: m) { mailbox.deliver(checkpointNow: c) }
                    case .go:
                        if let g = channel.decode(Go.self, from: m) { mailbox.deliver(go: g) }
                    case .lease:
                        if let l = channel.decode(Lease.self, from: m) { mailbox.deliver(lease: l) }
                    case .stop:
                        if let s = channel.decode(Stop.self, from: m) { mailbox.deliver(stop: s.reason) }
                    default:
                        channel.noteMalformed()
                    }
                }
            }
            let now = MonotonicClock.now()
            if let w = mailbox.monitor.withLock({ mailbox.welcome }), now - lastHeartbeat >= period {
                lastHeartbeat = now
                let h = mailbox.readHealth()
                try channel.send(.heartbeat, Heartbeat(workerID: w.workerID, generation: h.generation, step: h.step, state: h.state,
                                                       computeSeconds: h.computeSeconds, commSeconds: h.commSeconds,
                                                       allreduceGBs: h.allreduceGBs), generation: h.generation, step: h.step)
            }
            // Step reports travel in batches (one message per wake-up of this thread, every ≤ 20 ms),
            // so the coordinator handles a few messages a second however short the steps are.
            var reports: [StepReport] = []
            for out in mailbox.takeOutbox() {
                if case .stepReport(let r) = out {
                    reports.append(r)
                    continue
                }
                if case .stepOutcome(let o, let g) = out {
                    reports.append(StepReport(outcome: o, generation: g))
                    continue
                }
                if !reports.isEmpty { try channel.send(.stepReport, reports, generation: reports[0].generation, step: reports.last!.step); reports = [] }
                try send(out, on: channel)
            }
            if !reports.isEmpty { try channel.send(.stepReport, reports, generation: reports[0].generation, step: reports.last!.step) }
            if now - lastHeard > silenceLimit && mailbox.monitor.withLock({ mailbox.stop == nil }) {
                mailbox.deliver(controlError: "no word from the coordinator at \(endpoint) for \(Int(silenceLimit)) s")
                lastHeard = now
            }
        }
    }

    private func send(_ out: Mailbox.Outgoing, on channel: ControlSocket) throws {
        switch out {
        case .ready(let r): try channel.send(.ready, r)
        case .bound(let b): try channel.send(.bound, b, generation: b.generation)
        case .stepReport(let r): try channel.send(.stepReport, [r], generation: r.generation, step: r.step)
        case .stepOutcome(let o, let g): try channel.send(.stepReport, [StepReport(outcome: o, generation: g)], generation: g, step: o.globalStep)
        case .failure(let f): try channel.send(.failure, f, generation: f.generation, step: f.step)
        case .checkpoint(let c): try channel.send(.checkpointWritten, c, step: c.step)
        case .leave(let l): try channel.send(.leave, l)
        case .params(let header, let bytes):
            try channel.send(.paramsHeader, header, step: header.step)
            let size = ControlLimits.paramsChunk
            for k in 0..<header.chunks {
                let lo = k * size, hi = min(lo + size, bytes.count)
                try channel.sendRaw(.paramsChunk, Array(bytes[lo..<hi]), step: header.step, chunk: k)
            }
        }
    }
}

extension StepReport {
    /// The report of a finished step.
    init(outcome o: StepOutcome, generation g: UInt64) {
        let pc = o.phase.config
        self.init(generation: g, step: o.globalStep, phase: o.phase.index, epoch: o.phase.position(ofStep: o.phaseStep).epoch,
                  loss: Dictionary(uniqueKeysWithValues: o.terms.named(pc.kind)),
                  lr: Dictionary(uniqueKeysWithValues: pc.train.groups.map { ($0.name, (pc.optimizer.lr[$0] ?? 0) * o.lrFactor) }),
                  logitScale: o.logitScale, gradNorm: o.gradNorm, samplesPerSecond: Double(pc.batch) / o.seconds,
                  stepSeconds: o.seconds, json: o.json)
    }
}
