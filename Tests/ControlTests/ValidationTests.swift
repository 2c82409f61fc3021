import Control
import Foundation
import Wire
import XCTest

/// The checks' messages, the reason clipping and the intake's counts, case by case.
final class ValidationTests: XCTestCase {
    func assignment(rank: Int = 1, world: Int = 4) -> Assignment {
        Assignment(generation: 3, rank: rank, world: world, endpoints: (0..<world).map { "tcp://10.0.0.\($0 + 1):4000" }, startStep: 10,
                   resume: "/ckpt/step-10.lz4", leaseEnd: 60, totalSteps: 100, checkpoint: CheckpointPolicy(directory: "/ckpt", every: 50, keep: 3))
    }

    func refusal<T: ControlPayload>(_ value: T) -> String {
        do {
            _ = try T.decoded(from: Array(try JSONEncoder().encode(value)))
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testErrorsNameTheMessageAndTheField() {
        XCTAssertEqual(refusal(assignment()), "accepted")
        XCTAssertEqual(refusal(assignment(rank: 5)), "Assignment.rank 5 outside 0..<4")
        XCTAssertEqual(refusal(assignment(rank: 0, world: 0)), "Assignment.world 0 outside 1...4096")
        var a = assignment()
        a.endpoints[2] = "udp://x:1"
        XCTAssertEqual(refusal(a), "Assignment.endpoints[2] 'udp://x:1' is not a tcp:// or ipc:// endpoint")
        a = assignment()
        a.checkpoint.directory = "relative"
        XCTAssertEqual(refusal(a), "Assignment.checkpoint.directory 'relative' is not an absolute path")
        a = assignment()
        a.leaseEnd = 101
        XCTAssertEqual(refusal(a), "Assignment.leaseEnd 101 outside 10...100")
        XCTAssertEqual(refusal(Welcome(workerID: 1, config: "x", configHash: "h", heartbeatSeconds: -1)), "Welcome.heartbeatSeconds -1.0 is negative")
        XCTAssertEqual(refusal([StepReport]()), "[StepReport].count 0 outside 1...10000")
        let hello = WorkerHello(version: ProclipInfo.version, host: String(repeating: "h", count: 300), pid: 1, threads: 1,
                                dataEndpoint: "tcp://h:1", configHash: nil)
        XCTAssertEqual(refusal(hello), "WorkerHello.host is 300 bytes (at most 255)")
    }

    func testPayloadsThatDoNotDecodeNameTheFieldToo() {
        XCTAssertThrowsError(try Assignment.decoded(from: Array(#"{"generation":1}"#.utf8))) { e in
            XCTAssertEqual((e as? ControlError)?.undecodable, true)
            XCTAssertTrue("\(e)".hasPrefix("Assignment."), "\(e)")
        }
        XCTAssertThrowsError(try Heartbeat.decoded(from: Array(#"{"workerID":1,"generation":0,"step":1,"state":"dancing","computeSeconds":0,"commSeconds":0,"allreduceGBs":0}"#.utf8))) { e in
            XCTAssertTrue("\(e)".hasPrefix("Heartbeat.state:"), "\(e)")
        }
        // A type without fields still needs a JSON object.
        XCTAssertNoThrow(try StatusRequest.decoded(from: Array("{}".utf8)))
        for garbage in ["", "--1", "[]", "null", "\"x\""] {
            XCTAssertThrowsError(try StatusRequest.decoded(from: Array(garbage.utf8)), garbage)
        }
    }

    func testLongReasonsAreCutOnACharacterBoundary() {
        let long = String(repeating: "漢", count: 3000)  // 9000 UTF-8 bytes
        let r = Refusal(reason: long)
        XCTAssertLessThanOrEqual(r.reason.utf8.count, ControlLimits.maxReason)
        XCTAssertTrue(r.reason.hasSuffix(" …"))
        XCTAssertEqual(refusal(r), "accepted")
        XCTAssertEqual(Stop(reason: "short").reason, "short")
        XCTAssertEqual(refusal(FailureReport(workerID: 1, generation: 1, step: 0, reason: long)), "accepted")
    }

    func testTheIntakeCountsEveryRefusal() throws {
        var intake = ControlIntake(accepting: [(.heartbeat, maxPayload: 1000)])
        var header = [UInt8](repeating: 0, count: 32)
        header.withUnsafeMutableBytes { FrameHeader(type: .heartbeat, generation: 0, step: 0, collective: 0, chunk: 0).encode(into: $0.baseAddress!) }
        let good = Array(try JSONEncoder().encode(Heartbeat(workerID: 1, generation: 0, step: 0, state: .joining, computeSeconds: 0, commSeconds: 0, allreduceGBs: 0)))
        let m = try XCTUnwrap(header.withUnsafeBytes { intake.admit(header: $0, payload: good) })
        XCTAssertNotNil(intake.decode(Heartbeat.self, from: m))
        XCTAssertNil(header.withUnsafeBytes { intake.admit(header: $0, payload: [UInt8](repeating: 0, count: 1001)) }, "oversized")
        let bad = ControlMessage(header: m.header, payload: Array(#"{"workerID":0}"#.utf8), peer: nil)
        XCTAssertNil(intake.decode(Heartbeat.self, from: bad))
        XCTAssertEqual(intake.dropped, 2)
        XCTAssertEqual(intake.malformed, 1)
        XCTAssertEqual(intake.lastRefusal?.message, "Heartbeat")
    }
}
