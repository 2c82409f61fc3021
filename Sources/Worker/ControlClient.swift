import Basics
import Control
import Foundation
import Trainer
import Wire

/// The worker's control thread: owns the DEALER socket to the coordinator, turns each incoming
/// message into a core event, ticks the core (heartbeats, silence) and sends what the outbox
/// holds. Nothing on it waits for the compute thread.
final class ControlClient: Sendable {
    let endpoint: String
    let hello: WorkerHello
    let mailbox: Mailbox
    let security: ControlSecurity
    private let context: ZmqContext
    /// `finishing`: asked to send what is queued and end; `finished`: the thread has ended.
    private let lifecycle = Locked((finishing: false, finished: false))
    private let ended = Doorbell()
    /// How long one wait for a message lasts; step reports leave at least this often.
    private let pollMilliseconds = 20

    init(endpoint: String, hello: WorkerHello, mailbox: Mailbox, security: ControlSecurity) throws {
        self.endpoint = endpoint
        self.security = security
        self.hello = hello
        self.mailbox = mailbox
        context = try ZmqContext(ioThreads: 1)
    }

    func start() {
        let t = Thread { [self] in
            do { try run() } catch {
                let text = "\(error)"
                mailbox.handle { $0.onControlError(text) }
            }
            lifecycle.withLock { $0.finished = true }
            ended.ring()
        }
        t.name = "proclip-control"
        t.start()
    }

    /// Asks the thread to send what is queued and end; waits up to `seconds`.
    func finish(within seconds: Double) {
        lifecycle.withLock { $0.finishing = true }
        let deadline = Deadline.after(seconds: seconds)
        while true {
            let ticket = ended.ticket()
            if lifecycle.withLock({ $0.finished }) || deadline.hasPassed { break }
            ended.wait(after: ticket, until: deadline)
        }
        context.terminate()
    }

    private func run() throws {
        let socket = try context.socket(.dealer)
        defer { socket.close() }
        try socket.set(.linger(milliseconds: 2000))
        try socket.set(.heartbeat(interval: 1000, timeout: 5000, ttl: 5000))
        try socket.set(.reconnectInterval(100, max: 2000))
        try security.configureClient(socket)
        try socket.connect(endpoint)
        let channel = ControlSocket(socket: socket, accepting: ControlLimits.workerAccepts)
        mailbox.handle { [hello] in $0.onStart(hello, now: MonotonicClock.now()) }
        while true {
            if lifecycle.withLock({ $0.finishing }) && mailbox.outboxIsEmpty { return }
            if try channel.wait(milliseconds: pollMilliseconds) {
                while let m = try channel.receive() { deliver(m, channel: channel) }
            }
            mailbox.handle { $0.onTick(now: MonotonicClock.now()) }
            try drainOutbox(channel)
        }
    }

    /// One message from the coordinator, as a core event (a malformed one is counted).
    private func deliver(_ m: ControlMessage, channel: ControlSocket) {
        let now = MonotonicClock.now()
        func on<T: ControlPayload>(_ type: T.Type, _ event: (inout WorkerCore, T) -> [WorkerCore.Directive]) {
            // A message that does not decode, or fails its field checks, is counted and dropped.
            guard let value = channel.decode(T.self, from: m) else {
                mailbox.handle { $0.onUnreadable(now: now); return [] }
                return
            }
            mailbox.handle { event(&$0, value) }
        }
        switch m.header.type {
        case .welcome: on(Welcome.self) { $0.onWelcome($1, now: now) }
        case .refuse: on(Refusal.self) { $0.onRefusal($1, now: now) }
        case .assign: on(Assignment.self) { $0.onAssignment($1, now: now) }
        case .checkpointNow: on(CheckpointNow.self) { $0.onCheckpointNow($1, now: now) }
        case .go: on(Go.self) { $0.onGo($1, now: now) }
        case .lease: on(Lease.self) { $0.onLease($1, now: now) }
        case .stop: on(Stop.self) { $0.onStop($1, now: now) }
        default:
            channel.noteMalformed()
            mailbox.handle { $0.onUnreadable(now: now); return [] }
        }
    }

    /// Sends what is queued, in order. Step reports travel in batches (one message per wake-up of
    /// this thread, every ≤ 20 ms), so the coordinator handles a few messages a second however
    /// short the steps are.
    private func drainOutbox(_ channel: ControlSocket) throws {
        var reports: [StepReport] = []
        func flushReports() throws {
            guard let first = reports.first, let last = reports.last else { return }
            try channel.send(.stepReport, reports, generation: first.generation, step: last.step)
            reports = []
        }
        for out in mailbox.takeOutbox() {
            if case .stepOutcome(let o, let g) = out {
                reports.append(StepReport(outcome: o, generation: g))
                continue
            }
            try flushReports()
            switch out {
            case .message(let m): try send(m, on: channel)
            case .params(let header, let bytes): try sendParams(header, bytes, on: channel)
            case .stepOutcome: break
            }
        }
        try flushReports()
    }

    private func send(_ m: WorkerMessage, on channel: ControlSocket) throws {
        switch m {
        case .register(let h): try channel.send(.register, h)
        case .ready(let r): try channel.send(.ready, r)
        case .bound(let b): try channel.send(.bound, b, generation: b.generation)
        case .heartbeat(let h): try channel.send(.heartbeat, h, generation: h.generation, step: h.step)
        case .failure(let f): try channel.send(.failure, f, generation: f.generation, step: f.step)
        case .checkpointWritten(let c): try channel.send(.checkpointWritten, c, step: c.step)
        case .checkpointFailed(let c): try channel.send(.checkpointFailed, c, step: c.step)
        case .leave(let l): try channel.send(.leave, l)
        }
    }

    private func sendParams(_ header: ParamsHeader, _ bytes: [UInt8], on channel: ControlSocket) throws {
        try channel.send(.paramsHeader, header, step: header.step)
        let size = ControlLimits.paramsChunk
        for k in 0..<header.chunks {
            let lo = k * size, hi = min(lo + size, bytes.count)
            try channel.sendRaw(.paramsChunk, Array(bytes[lo..<hi]), step: header.step, chunk: k)
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
