import Control
import Foundation
import Wire
import XCTest

/// Feeds every control message type ≥ 100,000 random and mutated frames through the receive path
/// the sockets use (`ControlIntake.admit`: the header check; then `decode`: JSON and
/// `validated()`), and checks that nothing traps, that every frame is either accepted as a message
/// that passes its checks (and survives a round trip unchanged) or refused and counted, that
/// refusals = frames − accepted, and that frames known to be bad are refused and valid ones
/// accepted.
///
/// Seeds are fixed per type (set PROCLIP_FUZZ_SEED to vary them; PROCLIP_FUZZ_FRAMES to run more).
final class DecoderFuzzTests: XCTestCase {
    static let frames = max(100_000, Int(ProcessInfo.processInfo.environment["PROCLIP_FUZZ_FRAMES"] ?? "") ?? 0)
    static let seed = UInt64(ProcessInfo.processInfo.environment["PROCLIP_FUZZ_SEED"] ?? "") ?? 0x5EED

    // Test-only wire types for the parts that travel inside other messages.
    static let policyType = MessageType(rawValue: 0x3B)
    static let reportType = MessageType(rawValue: 0x3C)
    static let phaseType = MessageType(rawValue: 0x3D)
    static let workerType = MessageType(rawValue: 0x3E)
    static let eventType = MessageType(rawValue: 0x3F)

    func testWorkerHello() { fuzz(.register, Samples.hello) }
    func testReady() { fuzz(.ready, Samples.ready) }
    func testWelcome() { fuzz(.welcome, Samples.welcome) }
    func testAssignment() { fuzz(.assign, Samples.assignment) }
    func testCheckpointPolicy() { fuzz(Self.policyType, Samples.policy) }
    func testLease() { fuzz(.lease, Samples.lease) }
    func testCheckpointNow() { fuzz(.checkpointNow, Samples.checkpointNow) }
    func testHeartbeat() { fuzz(.heartbeat, Samples.heartbeat) }
    func testStepReportBatch() { fuzz(.stepReport, Samples.batch) }
    func testStepReport() { fuzz(Self.reportType, Samples.stepReport) }
    func testFailureReport() { fuzz(.failure, Samples.failure) }
    func testRefusal() { fuzz(.refuse, Samples.refusal) }
    func testParamsHeader() { fuzz(.paramsHeader, Samples.paramsHeader) }
    func testCheckpointWritten() { fuzz(.checkpointWritten, Samples.checkpointWritten) }
    func testCheckpointFailed() { fuzz(.checkpointFailed, Samples.checkpointFailed) }
    func testLeave() { fuzz(.leave, Samples.leave) }
    func testStop() { fuzz(.stop, Samples.stop) }
    func testStatusRequest() { fuzz(.statusRequest) { _ in StatusRequest() } }
    func testBound() { fuzz(.bound, Samples.bound) }
    func testGo() { fuzz(.go, Samples.go) }
    func testStatusReport() { fuzz(.statusReply, Samples.status) }
    func testStatusReportPhase() { fuzz(Self.phaseType, Samples.phase) }
    func testStatusReportWorker() { fuzz(Self.workerType, Samples.worker) }
    func testStatusReportEvent() { fuzz(Self.eventType, Samples.event) }

    enum Outcome { case dropped, refused, accepted, inconsistent }
    typealias Route = (inout ControlIntake, ControlMessage) -> Outcome

    /// What the socket's owner does with a message of each type: decode it as its message.
    static let routes: [UInt8: Route] = {
        func route<T: ControlPayload & Equatable>(_: T.Type) -> Route {
            { intake, m in
                guard let v = intake.decode(T.self, from: m) else { return .refused }
                guard (try? v.validated()) != nil, let bytes = try? JSONEncoder().encode(v),
                      let again = try? T.decoded(from: Array(bytes)), again == v else { return .inconsistent }
                return .accepted
            }
        }
        return [
            MessageType.register.rawValue: route(WorkerHello.self), MessageType.ready.rawValue: route(Ready.self),
            MessageType.welcome.rawValue: route(Welcome.self), MessageType.assign.rawValue: route(Assignment.self),
            policyType.rawValue: route(CheckpointPolicy.self), MessageType.lease.rawValue: route(Lease.self),
            MessageType.checkpointNow.rawValue: route(CheckpointNow.self), MessageType.heartbeat.rawValue: route(Heartbeat.self),
            MessageType.stepReport.rawValue: route([StepReport].self), reportType.rawValue: route(StepReport.self),
            MessageType.failure.rawValue: route(FailureReport.self), MessageType.refuse.rawValue: route(Refusal.self),
            MessageType.paramsHeader.rawValue: route(ParamsHeader.self), MessageType.checkpointWritten.rawValue: route(CheckpointWritten.self),
            MessageType.checkpointFailed.rawValue: route(CheckpointFailed.self),
            MessageType.leave.rawValue: route(Leave.self), MessageType.stop.rawValue: route(Stop.self),
            MessageType.statusRequest.rawValue: route(StatusRequest.self), MessageType.bound.rawValue: route(Bound.self),
            MessageType.go.rawValue: route(Go.self), MessageType.statusReply.rawValue: route(StatusReport.self),
            phaseType.rawValue: route(StatusReport.Phase.self), workerType.rawValue: route(StatusReport.Worker.self),
            eventType.rawValue: route(StatusReport.Event.self),
        ]
    }()

    /// What a frame must come to.
    enum Expect { case accept, refuse, any }

    struct Frame {
        var header: [UInt8]
        var payload: [UInt8]?
        var extraFrames = 0
        var expect: Expect
        var note: String
    }

    func fuzz<T: ControlPayload & Equatable>(_ type: MessageType, _ make: (inout Rng) -> T) {
        let name = T.messageName
        var g = Rng(seed: Self.seed ^ name.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 })
        let accepts = Self.routes.keys.map { (MessageType(rawValue: $0), maxPayload: ControlLimits.json) }
        // Valid samples: each decodes to itself.
        var pool: [(bytes: [UInt8], tree: JSONTree, paths: [([JSONTree.Step], JSONTree)])] = []
        for _ in 0..<64 {
            let v = make(&g)
            let bytes = Array(try! JSONEncoder().encode(v))
            XCTAssertEqual(try T.decoded(from: bytes), v, "\(name): a valid sample is refused: \(String(decoding: bytes, as: UTF8.self))")
            guard let tree = JSONTree.parse(bytes) else { return XCTFail("\(name): the test's parser cannot read \(String(decoding: bytes, as: UTF8.self))") }
            XCTAssertEqual(try T.decoded(from: Array(tree.render().utf8)), v, "\(name): the tree renders what it parsed")
            pool.append((bytes, tree, tree.paths()))
        }
        let mustRefuse = (Samples.mustRefuse[name] ?? []).map { (path: Self.steps($0.0), raw: $0.1) }
        XCTAssertFalse(mustRefuse.isEmpty || type == .statusRequest && mustRefuse.count < 3, "\(name): no known-bad values listed")
        var exercised = [Int](repeating: 0, count: mustRefuse.count)

        var intake = ControlIntake(accepting: accepts)
        var accepted = 0
        var counts: [Expect: Int] = [.accept: 0, .refuse: 0, .any: 0]
        var problems: [String] = []
        let start = Date()
        for n in 0..<Self.frames {
            let sample = pool[g.int(0...pool.count - 1)]
            var frame = Frame(header: Self.header(type, &g), payload: sample.bytes, expect: .accept, note: "valid")
            switch g.int(0...99) {
            case 0..<4:
                frame = Frame(header: g.bytes(g.int(0...40)), payload: g.chance(0.8) ? g.bytes(g.int(0...32)) : nil, expect: .any, note: "random bytes")
            case 4..<8:
                frame.header[g.int(0...31)] = UInt8.random(in: 0...255, using: &g)
                frame.expect = .any
                frame.note = "header byte changed"
            case 8..<10:
                if g.chance(0.5) { frame.payload = nil } else { frame.extraFrames = g.int(1...3) }
                frame.expect = .refuse
                frame.note = "missing payload or extra frames"
            case 10..<18:
                frame.payload = g.bytes(g.int(0...200))
                frame.expect = .any
                frame.note = "random payload"
            case 18..<30:
                break
            case 30..<60:
                frame.payload = Self.mutate(sample.bytes, &g)
                frame.expect = .any
                frame.note = "mutated bytes"
            case 60..<92:
                let (path, node) = g.pick(sample.paths)
                let raw = g.pick(Samples.replacements)
                let kind = JSONTree.kind(ofRaw: raw)
                frame.payload = Array(sample.tree.render(replacing: path, with: raw).utf8)
                // Not JSON, or a JSON value of another kind than the field's: must be refused.
                let wrongKind = kind != node.kind && kind != .null && node.kind != .null
                frame.expect = kind == .invalid || wrongKind ? .refuse : .any
                frame.note = "\(path.map(\.description).joined(separator: ".")) = \(raw.prefix(40))"
            default:
                guard !mustRefuse.isEmpty else { break }
                let k = g.int(0...mustRefuse.count - 1)
                // Skipped when the sample left the optional field out.
                guard sample.tree.node(at: mustRefuse[k].path[...]) != nil, let raw = Self.resolve(mustRefuse[k].raw, in: sample.tree) else { break }
                exercised[k] += 1
                frame.payload = Array(sample.tree.render(replacing: mustRefuse[k].path, with: raw).utf8)
                frame.expect = .refuse
                frame.note = "known bad: \(mustRefuse[k].path.map(\.description).joined(separator: ".")) = \(mustRefuse[k].raw.prefix(40))"
            }
            counts[frame.expect, default: 0] += 1
            let admitted = frame.header.withUnsafeBytes { intake.admit(header: $0, payload: frame.payload, extraFrames: frame.extraFrames) }
            let outcome = admitted.map { Self.routes[$0.header.type.rawValue]!(&intake, $0) } ?? .dropped
            if outcome == .accepted { accepted += 1 }
            let bad = outcome == .inconsistent || (frame.expect == .accept && outcome != .accepted) || (frame.expect == .refuse && outcome == .accepted)
            if bad && problems.count < 5 {
                let text = frame.payload.map { String(decoding: $0.prefix(300), as: UTF8.self) } ?? "(none)"
                problems.append("frame \(n) (\(frame.note)): expected \(frame.expect), got \(outcome); payload \(text)")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertTrue(problems.isEmpty, "\(name) (seed \(Self.seed)):\n" + problems.joined(separator: "\n"))
        XCTAssertEqual(intake.dropped, Self.frames - accepted, "\(name): refusals ≠ frames − accepted")
        XCTAssertEqual(intake.validator.drops.total + intake.malformed, Self.frames - accepted)
        XCTAssertGreaterThan(accepted, Self.frames / 10, "\(name): the generator should produce valid frames")
        XCTAssertGreaterThan(Self.frames - accepted, Self.frames / 3, "\(name): the generator should produce bad frames")
        for (k, count) in exercised.enumerated() where count == 0 {
            XCTFail("\(name): known-bad value \(mustRefuse[k].path) = \(mustRefuse[k].raw.prefix(40)) never tried")
        }
        print("fuzz \(name): \(Self.frames) frames, \(accepted) accepted, \(intake.validator.drops.total) dropped at the header, "
              + "\(intake.malformed) refused at decode (must accept \(counts[.accept]!), must refuse \(counts[.refuse]!)), "
              + String(format: "%.1f s", seconds))
    }

    /// A valid header of `type` with random generation and step.
    static func header(_ type: MessageType, _ g: inout Rng) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: FrameHeader.byteCount)
        let h = FrameHeader(type: type, generation: UInt64(g.int(0...100)), step: UInt64(g.int(0...100_000)), collective: 0,
                            chunk: UInt32(g.int(0...3)))
        bytes.withUnsafeMutableBytes { h.encode(into: $0.baseAddress!) }
        return bytes
    }

    /// 1–4 random edits: a bit flipped, a byte inserted, deleted or replaced by JSON punctuation,
    /// a truncation, a span repeated.
    static func mutate(_ bytes: [UInt8], _ g: inout Rng) -> [UInt8] {
        var b = bytes
        let punctuation = Array("{}[],:\"\\0123456789eE.-+ ntfu".utf8)
        for _ in 0..<g.int(1...4) {
            let i = b.isEmpty ? 0 : g.int(0...b.count - 1)
            switch g.int(0...5) {
            case 0 where !b.isEmpty: b[i] ^= 1 << UInt8(g.int(0...7))
            case 1: b.insert(UInt8.random(in: 0...255, using: &g), at: b.isEmpty ? 0 : g.int(0...b.count))
            case 2 where !b.isEmpty: b.remove(at: i)
            case 3 where !b.isEmpty: b[i] = g.pick(punctuation)
            case 4: b = Array(b.prefix(g.int(0...b.count)))
            case 5 where !b.isEmpty:
                let j = g.int(i...min(b.count - 1, i + 16))
                b.insert(contentsOf: b[i...j], at: j + 1)
            default: break
            }
        }
        return b
    }

    /// `raw`, or for "$path", "$path+1", "$path-1" the sample's integer at `path` (plus or minus one).
    static func resolve(_ raw: String, in tree: JSONTree) -> String? {
        guard raw.hasPrefix("$") else { return raw }
        var name = String(raw.dropFirst())
        var delta = 0
        if name.hasSuffix("+1") { delta = 1 } else if name.hasSuffix("-1") { delta = -1 }
        if delta != 0 { name.removeLast(2) }
        guard case .number(let text)? = tree.node(at: steps(name)[...]), let v = Int(text) else { return nil }
        return "\(v + delta)"
    }

    /// "checkpoint.keep" or "[0].step" as path steps ("" is the root).
    static func steps(_ path: String) -> [JSONTree.Step] {
        var out: [JSONTree.Step] = []
        for part in path.split(separator: ".") {
            var s = Substring(part)
            if s.hasPrefix("["), let close = s.firstIndex(of: "]"), let i = Int(s[s.index(after: s.startIndex)..<close]) {
                out.append(.index(i))
                s = s[s.index(after: close)...]
                if s.isEmpty { continue }
            }
            out.append(.key(String(s)))
        }
        return out
    }
}
