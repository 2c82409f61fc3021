import XCTest
@testable import Wire

final class FrameTests: XCTestCase {
    let header = FrameHeader(type: MessageType(rawValue: 0x11), generation: 0x0102_0304_0506_0708, step: 42, collective: 7, chunk: 0xDEAD_BEEF)

    func encoded(_ h: FrameHeader) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: FrameHeader.byteCount)
        bytes.withUnsafeMutableBytes { h.encode(into: $0.baseAddress!) }
        return bytes
    }

    func testHeaderRoundTripAndByteLayout() {
        let bytes = encoded(header)
        XCTAssertEqual(Array(bytes[0..<4]), Array("PCLW".utf8))
        XCTAssertEqual(bytes[4], 1)
        XCTAssertEqual(bytes[5], 0x11)
        XCTAssertEqual(Array(bytes[8..<16]), [8, 7, 6, 5, 4, 3, 2, 1])  // little-endian
        XCTAssertEqual(Array(bytes[28..<32]), [0xEF, 0xBE, 0xAD, 0xDE])
        let decoded = bytes.withUnsafeBytes { FrameHeader.decode($0) }
        XCTAssertEqual(try decoded.get(), header)
    }

    func testEveryMalformedHeaderIsNamed() {
        let good = encoded(header)
        func reason(_ b: [UInt8]) -> DropReason? {
            if case .failure(let r) = b.withUnsafeBytes({ FrameHeader.decode($0) }) { return r }
            return nil
        }
        for n in 0..<FrameHeader.byteCount { XCTAssertEqual(reason(Array(good[0..<n])), .headerTruncated, "prefix \(n)") }
        XCTAssertEqual(reason(good + [0]), .headerOversized)
        for i in 0..<4 {
            var b = good
            b[i] ^= 0x20
            XCTAssertEqual(reason(b), .badMagic)
        }
        var b = good
        b[4] = 2
        XCTAssertEqual(reason(b), .unsupportedVersion)
        b = good
        b[7] = 1
        XCTAssertEqual(reason(b), .reservedBitsSet)
    }

    func testValidatorChecksTypeSizeAndFrameCount() {
        var v = FrameValidator(accepting: [(MessageType(rawValue: 0x11), maxPayload: 100)])
        let good = encoded(header)
        good.withUnsafeBytes { g in
            XCTAssertEqual(try? v.validate(header: g, payloadCount: 100, extraFrames: 0).get(), header)
            XCTAssertEqual(try? v.validate(header: g, payloadCount: 0, extraFrames: 0).get(), header)
            XCTAssertNil(try? v.validate(header: g, payloadCount: 101, extraFrames: 0).get())
            XCTAssertNil(try? v.validate(header: g, payloadCount: nil, extraFrames: 0).get())
            XCTAssertNil(try? v.validate(header: g, payloadCount: 4, extraFrames: 1).get())
        }
        var other = header
        other.type = MessageType(rawValue: 0x12)
        encoded(other).withUnsafeBytes { g in
            XCTAssertNil(try? v.validate(header: g, payloadCount: 4, extraFrames: 0).get())
        }
        XCTAssertEqual(v.drops[.payloadTooLarge], 1)
        XCTAssertEqual(v.drops[.missingPayload], 1)
        XCTAssertEqual(v.drops[.extraFrames], 1)
        XCTAssertEqual(v.drops[.unknownType], 1)
        XCTAssertEqual(v.drops.total, 4)
    }

    /// Random, truncated, bit-flipped and oversized input: always a verdict, never a trap, and
    /// every rejection counted.
    func testFuzzedHeadersAreDroppedAndCounted() {
        var rng = SplitMix(seed: 0x5EED)
        var v = FrameValidator(accepting: [(MessageType(rawValue: 0x11), maxPayload: 1 << 20)])
        let good = encoded(header)
        var accepted = 0, rejected = 0
        for i in 0..<20_000 {
            var bytes: [UInt8]
            switch i % 4 {
            case 0: bytes = (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 1: bytes = Array(good[0..<Int(rng.next() % 33)])
            case 2:
                bytes = good
                bytes[Int(rng.next() % 32)] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            default: bytes = good + (0..<Int(1 + rng.next() % 4096)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            let payload = Int(rng.next() % (2 << 20))
            let extra = Int(rng.next() % 3) == 0 ? 1 : 0
            let result = bytes.withUnsafeBytes { v.validate(header: $0, payloadCount: payload, extraFrames: extra) }
            if case .success(let h) = result {
                accepted += 1
                XCTAssertEqual(h.type.rawValue, 0x11)
                XCTAssertLessThanOrEqual(payload, 1 << 20)
                XCTAssertEqual(extra, 0)
            } else {
                rejected += 1
            }
        }
        XCTAssertEqual(v.drops.total, rejected)
        XCTAssertEqual(accepted + rejected, 20_000)
        XCTAssertGreaterThan(rejected, 15_000)
        XCTAssertGreaterThan(v.drops[.headerTruncated], 0)
        XCTAssertGreaterThan(v.drops[.headerOversized], 0)
        XCTAssertGreaterThan(v.drops[.badMagic], 0)
    }
}

/// A small deterministic generator for the fuzz tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
