import Basics
import Foundation
import TestSupport
import XCTest
@testable import Wire

/// CURVE with the ZAP handler, over real TCP sockets: an admitted key's messages arrive carrying
/// its user id; a client with another key, or with no CURVE at all, delivers nothing and is
/// counted.
final class ZapTests: XCTestCase {
    func testAdmitsListedKeysOnlyAndNamesThem() throws {
        let server = try CurveKeyPair.generate(), worker = try CurveKeyPair.generate(), status = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let context = try ZmqContext()
        let zap = try ZapHandler(context: context, allowed: [worker.publicKey: "worker", status.publicKey: "status"])
        let router = try context.socket(.router)
        try router.set(.curveServer(secretKey: server.secretKey))
        try router.set(.zapDomain(ZapHandler.domain))
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint()
        defer {
            router.close()
            zap.stop()
            context.terminate()
        }

        func client(_ pair: CurveKeyPair?) throws -> ZmqSocket {
            let s = try context.socket(.dealer)
            if let pair { try s.set(.curveClient(serverKey: server.publicKey, publicKey: pair.publicKey, secretKey: pair.secretKey)) }
            try s.connect(endpoint)
            return s
        }
        let clients = [("worker", try client(worker)), ("status", try client(status)), ("stranger", try client(stranger)), ("plain", try client(nil))]
        defer { for (_, c) in clients { c.close() } }
        let part = ZmqMessage()
        for (name, c) in clients {
            try Array(name.utf8).withUnsafeBytes { try part.setCopy(of: $0) }
            _ = try c.send(part)
        }
        // Two messages arrive, each with the user id its key was given.
        var seen: [String: String] = [:]
        let identity = ZmqMessage(), body = ZmqMessage()
        waitUntil(deadline: .after(seconds: 10), interval: 0.01) {
            while (try? router.receive(identity)) == true, (try? router.receive(body)) == true {
                seen[String(decoding: body.bytes, as: UTF8.self)] = body.userID ?? "none"
            }
            return seen.count >= 2 && zap.decisions.refused >= 1
        }
        // Give a late stranger every chance to be (wrongly) delivered.
        Thread.sleep(forTimeInterval: 0.3)
        while (try? router.receive(identity)) == true, (try? router.receive(body)) == true {
            seen[String(decoding: body.bytes, as: UTF8.self)] = body.userID ?? "none"
        }
        XCTAssertEqual(seen, ["worker": "worker", "status": "status"])
        XCTAssertEqual(zap.decisions.admitted, 2)
        XCTAssertEqual(zap.decisions.refused, 1, "the stranger's key (the plain client fails CURVE before ZAP is asked)")
        XCTAssertTrue(zap.decisions.lastRefusal?.contains("not one of this job's keys") ?? false, "\(String(describing: zap.decisions.lastRefusal))")
    }

    func testZ85RoundTripAndPublicOfSecret() throws {
        let pair = try CurveKeyPair.generate()
        let raw = try XCTUnwrap(CurveKeyPair.decode(pair.publicKey))
        XCTAssertEqual(raw.count, 32)
        XCTAssertEqual(CurveKeyPair.encode(raw), pair.publicKey)
        XCTAssertEqual(CurveKeyPair.publicKey(ofSecret: pair.secretKey), pair.publicKey)
        XCTAssertNil(CurveKeyPair.decode("short"))
        XCTAssertNil(CurveKeyPair.decode(String(repeating: " ", count: 40)))
    }
}
