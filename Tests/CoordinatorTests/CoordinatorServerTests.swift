import Basics
import Control
@testable import Coordinator
import Features
import Foundation
import JobConfig
import Model
import Tensors
import Wire
import XCTest

/// The coordinator's shell in this process, with a scripted worker on a DEALER socket: a job of
/// two one-step phases runs to its end through both evaluations (the evaluation thread's hand-off),
/// registrations that do not decode or come from another version are refused, an oversized upload
/// is refused, and a stop request from another thread ends the job.
final class CoordinatorServerTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "proclip-shell-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func options() throws -> CoordinatorOptions {
        let yaml = """
            name: shell
            seed: 3
            model: {d_llm: 64, d_embed: 32, text_blocks: 1, text_expansion: 2, image_blocks: 1, image_expansion: 2}
            data:
              path: \(dir)/world
              variants: [short_en, long_en, noisy_en, long_de, long_zh]
              synthetic: {seed: 1, pairs: 256, eval_pairs: 64}
            phases:
              - {name: inherit, kind: inherit, steps: 1, batch: 32, group: 8, lr: 1.0e-3,
                 losses: {ins: {variants: [short_en, noisy_en]}, str: {variants: [short_en]}}}
              - {name: contrast, kind: contrast, steps: 1, batch: 32, group: 8, lr: 1.0e-3, lambda: 4.0e-3, variants: [short_en, long_en]}
            """
        var o = CoordinatorOptions(config: try JobConfig.parse(yaml, source: "test"), listen: "tcp://127.0.0.1:*", minWorkers: 1, workers: 1,
                                   runDir: dir + "/run")
        o.noCheckpoints = true
        o.verbose = false
        return o
    }

    /// `--resume auto` with no checkpoint that verifies: a fresh start, and one note naming every
    /// file skipped and why; with no checkpoint at all, the plain note.
    func testResumeAutoNamesEverySkippedCheckpoint() throws {
        let config = try options().config
        let checkpoints = dir + "/checkpoints"
        try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
        let empty = try CoordinatorServer.chooseCheckpoint("auto", directory: checkpoints, config: config, manifestHash: "m", allowConfigChange: false)
        XCTAssertNil(empty.checkpoint)
        XCTAssertEqual(empty.notes, ["resume: no checkpoint in \(checkpoints); starting from step 0"])
        try Files.writeAtomically(checkpoints + "/ckpt-000000000010.lz4", Array("garbage".utf8))
        try Files.writeAtomically(checkpoints + "/ckpt-000000000020.lz4", [])
        let chosen = try CoordinatorServer.chooseCheckpoint("auto", directory: checkpoints, config: config, manifestHash: "m", allowConfigChange: false)
        XCTAssertNil(chosen.checkpoint)
        XCTAssertEqual(chosen.notes, [
            "resume: no valid checkpoint in \(checkpoints) (skipped ckpt-000000000020.lz4: not an LZ4 frame: file is 0 bytes; "
                + "ckpt-000000000010.lz4: not an LZ4 frame: starts with bytes 67 61 72 62, expected 04 22 4d 18); starting from step 0",
        ])
    }

    /// Runs `serve()` on a thread of its own; the returned box gets its exit status.
    func serve(_ server: CoordinatorServer) -> Box {
        let box = Box()
        nonisolated(unsafe) let s = server  // from here on only the serving thread touches it
        let t = Thread { box.set(s.serve()) }
        t.start()
        return box
    }

    final class Box: Sendable {
        private let code = Locked<Int32?>(nil)
        func set(_ c: Int32) { code.withLock { $0 = c } }
        func wait(seconds: Double) -> Int32? {
            let deadline = Deadline.after(seconds: seconds)
            while !deadline.hasPassed {
                if let c = code.withLock({ $0 }) { return c }
                usleep(10_000)
            }
            return nil
        }
    }

    /// A worker's control socket, scripted.
    final class FakeWorker {
        let context: ZmqContext
        let channel: ControlSocket
        var workerID: UInt64 = 0

        init(_ endpoint: String) throws {
            context = try ZmqContext(ioThreads: 1)
            let socket = try context.socket(.dealer)
            try socket.set(.linger(milliseconds: 0))
            try socket.connect(endpoint)
            channel = ControlSocket(socket: socket, accepting: ControlLimits.workerAccepts)
        }

        deinit {
            channel.socket.close()
            context.terminate()
        }

        /// The next message of `type` (others are skipped), within `seconds`; heartbeats meanwhile.
        func next(_ type: MessageType, within seconds: Double = 30) throws -> ControlMessage {
            let deadline = Deadline.after(seconds: seconds)
            var beat = 0.0
            while !deadline.hasPassed {
                if workerID != 0, MonotonicClock.now() - beat > 0.5 {
                    beat = MonotonicClock.now()
                    try channel.send(.heartbeat, Heartbeat(workerID: workerID, generation: 0, step: 0, state: .ready, computeSeconds: 0,
                                                           commSeconds: 0, allreduceGBs: 0))
                }
                if try channel.wait(milliseconds: 20) {
                    while let m = try channel.receive() { if m.header.type == type { return m } }
                }
            }
            throw WireError.timedOut("no \(type) within \(seconds) s")
        }

        func upload(_ store: ParameterStore, step: Int, phase: Int, final: Bool) throws {
            var w = SafeTensorsWriter()
            store.write(into: &w, includeEMA: true)
            let bytes = w.serialize()
            let chunks = (bytes.count + ControlLimits.paramsChunk - 1) / ControlLimits.paramsChunk
            try channel.send(.paramsHeader, ParamsHeader(step: step, phase: phase, final: final, bytes: bytes.count, chunks: chunks), step: step)
            for k in 0..<chunks {
                let lo = k * ControlLimits.paramsChunk
                try channel.sendRaw(.paramsChunk, Array(bytes[lo..<min(lo + ControlLimits.paramsChunk, bytes.count)]), step: step, chunk: k)
            }
        }
    }

    func hello(version: String = ProclipInfo.version) -> WorkerHello {
        WorkerHello(version: version, host: "127.0.0.1", pid: getpid(), threads: 1, dataEndpoint: "tcp://127.0.0.1:1", configHash: nil)
    }

    func report(_ g: UInt64, step: Int, phase: Int) -> StepReport {
        StepReport(generation: g, step: step, phase: phase, epoch: 0, loss: ["total": 1], lr: ["adaptor": 1e-3], logitScale: 2.6,
                   gradNorm: 1, samplesPerSecond: 100, stepSeconds: 0.1, json: "{\"step\":\(step)}")
    }

    /// Joins as the only worker; returns the assignment.
    func join(_ w: FakeWorker) throws -> Assignment {
        try w.channel.send(.register, hello())
        let welcome = try XCTUnwrap(w.channel.decode(Welcome.self, from: try w.next(.welcome)))
        w.workerID = welcome.workerID
        let manifest = try Manifest.read(dir + "/world/manifest.json")
        try w.channel.send(.ready, Ready(workerID: welcome.workerID, manifestHash: manifest.contentHash))
        let a = try XCTUnwrap(w.channel.decode(Assignment.self, from: try w.next(.assign)))
        try w.channel.send(.bound, Bound(workerID: w.workerID, generation: a.generation), generation: a.generation)
        _ = try w.next(.go)
        return a
    }

    func testAJobRunsToItsEndThroughBothEvaluationsAndBadRegistrationsAreRefused() throws {
        let o = try options()
        let server = try CoordinatorServer(options: o)
        let endpoint = server.endpoint
        let exit = serve(server)

        // A registration that does not decode, and one of another version: refused, with reasons.
        let stranger = try FakeWorker(endpoint)
        try stranger.channel.sendRaw(.register, Array(#"{"version":"9.9","hostname":"x"}"#.utf8))
        let r1 = try XCTUnwrap(stranger.channel.decode(Refusal.self, from: try stranger.next(.refuse)))
        XCTAssertTrue(r1.reason.contains("another proclip version") && r1.reason.contains("WorkerHello"), r1.reason)
        let old = try FakeWorker(endpoint)
        try old.channel.send(.register, hello(version: "0.0.1"))
        let r2 = try XCTUnwrap(old.channel.decode(Refusal.self, from: try old.next(.refuse)))
        XCTAssertTrue(r2.reason.contains("version differs") && r2.reason.contains("0.0.1"), r2.reason)

        let w = try FakeWorker(endpoint)
        let a = try join(w)
        XCTAssertEqual(a.world, 1)
        XCTAssertEqual(a.totalSteps, 2)
        let store = ParameterStore(layout: ParameterLayout(o.config.model))
        store.initialize(seed: 3)
        try w.channel.send(.stepReport, [report(a.generation, step: 1, phase: 0)], generation: a.generation, step: 1)
        try w.upload(store, step: 1, phase: 0, final: false)
        // The status client's connection is not ordered with the worker's: ask until the report is in.
        let client = try StatusClient(endpoint: endpoint)
        var status = try client.query(timeout: 10)
        let deadline = Deadline.after(seconds: 10)
        while status.step < 1 && !deadline.hasPassed {
            usleep(20_000)
            status = try client.query(timeout: 10)
        }
        XCTAssertEqual(status.step, 1)
        XCTAssertEqual(status.workers.map(\.state), [.assigned])
        XCTAssertGreaterThanOrEqual(status.droppedMessages, 1, "the registration that did not decode is counted")
        try w.channel.send(.stepReport, [report(a.generation, step: 2, phase: 1)], generation: a.generation, step: 2)
        try w.upload(store, step: 2, phase: 1, final: true)
        let stop = try XCTUnwrap(w.channel.decode(Stop.self, from: try w.next(.stop, within: 60)))
        XCTAssertEqual(stop.reason, "the job is done")
        XCTAssertEqual(exit.wait(seconds: 10), 0)

        let evals = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: o.runDir + "/eval.json"))) as? [[String: Any]]
        XCTAssertEqual(evals?.count, 3, "the baseline and both phases")
        XCTAssertEqual(evals?.dropFirst().compactMap { $0["step"] as? Int }, [1, 2])
        XCTAssertEqual(evals?.last?["phase"] as? String, "contrast")
        XCTAssertTrue(FileManager.default.fileExists(atPath: o.runDir + "/final.safetensors"))
        let log = try String(contentsOfFile: o.runDir + "/train.log", encoding: .utf8)
        XCTAssertTrue(log.contains("refused a registration: WorkerHello"), log)
        XCTAssertTrue(log.contains("after inherit (step 1)") && log.contains("after contrast (step 2)"), log)
    }

    func testAStopRequestFromAnotherThreadStopsTheJob() throws {
        let server = try CoordinatorServer(options: try options())
        let endpoint = server.endpoint
        let stopRequest = server.stopRequest
        let exit = serve(server)
        let w = try FakeWorker(endpoint)
        _ = try join(w)
        // An upload far larger than this model's parameters is refused before anything is allocated.
        try w.channel.send(.paramsHeader, ParamsHeader(step: 1, phase: 0, final: false, bytes: 1 << 34, chunks: 2048), step: 1)
        let client = try StatusClient(endpoint: endpoint)
        var dropped = 0
        let deadline = Deadline.after(seconds: 10)
        while dropped < 1 && !deadline.hasPassed { dropped = try client.query(timeout: 10).droppedMessages }
        XCTAssertEqual(dropped, 1)
        Thread { stopRequest.raise() }.start()
        let stop = try XCTUnwrap(w.channel.decode(Stop.self, from: try w.next(.stop)))
        XCTAssertEqual(stop.reason, "the coordinator is stopping")
        XCTAssertEqual(exit.wait(seconds: 10), 143)
    }
}
