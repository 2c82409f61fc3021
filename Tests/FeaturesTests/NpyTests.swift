import XCTest
@testable import Features
import Tensors
import Basics
import TestSupport

final class NpyTests: XCTestCase {
    private func parse(_ bytes: [UInt8]) throws -> NpyHeader {
        try bytes.withUnsafeBytes { try NpyHeader.parse($0, path: "x.npy") }
    }

    func testEncodedHeaderParsesBackAndAlignsTo64() throws {
        for (dtype, shape) in [(NpyDType.float32, [3, 4]), (.float16, [7]), (.int32, [2, 5, 3]), (.float32, [0, 8])] {
            let h = NpyHeader.encode(dtype: dtype, shape: shape)
            XCTAssertEqual(h.count % 64, 0)
            XCTAssertEqual(h[6], 1)
            XCTAssertEqual(h.last, 0x0A)
            let p = try parse(h)
            XCTAssertEqual(p, NpyHeader(dtype: dtype, shape: shape, dataOffset: h.count))
        }
    }

    func testVersion2And3HeadersAndOddSpacing() throws {
        let dict = Array("{\"descr\":\"<f2\",\"fortran_order\":False,\"shape\":(2,3)}\n".utf8)
        for major: UInt8 in [2, 3] {
            var b = NpyHeader.magic + [major, 0]
            b += (0..<4).map { UInt8((dict.count >> (8 * $0)) & 0xFF) } + dict
            XCTAssertEqual(try parse(b), NpyHeader(dtype: .float16, shape: [2, 3], dataOffset: 12 + dict.count))
        }
    }

    func testRefusals() {
        func problem(_ dict: String) -> String {
            var b = NpyHeader.magic + [1, 0, UInt8(dict.utf8.count), 0]
            b += Array(dict.utf8)
            do { _ = try parse(b); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(problem("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }"),
                       "x.npy: dtype '<f8': expected little-endian float32 '<f4' or float16 '<f2'")
        XCTAssertTrue(problem("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }").contains("dtype '>f4'"))
        XCTAssertTrue(problem("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }").contains("Fortran order"))
        XCTAssertTrue(problem("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }").contains("structured"))
        XCTAssertTrue(problem("{'descr': '<f4', 'shape': (2,), }").contains("fortran_order"))
        XCTAssertTrue(problem("{'descr': '<f4' 'fortran_order': False}").contains("not a valid dict literal"))
        XCTAssertThrowsError(try parse(Array("PK\u{3}\u{4}notnumpy".utf8))) { XCTAssertTrue("\($0)".contains("magic")) }
        XCTAssertThrowsError(try parse(NpyHeader.magic + [1, 0, 200, 0] + Array("{'descr'".utf8))) {
            XCTAssertTrue("\($0)".contains("truncated .npy header"))
        }
    }

    func testCRC32MatchesZlibCheckValue() {
        let bytes = Array("123456789".utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { CRC32.checksum($0) }, 0xCBF4_3926)
        // Split updates give the same value as one pass, at every split point (tests the 8-byte loop).
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = long.withUnsafeBytes { CRC32.checksum($0) }
        for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
            var c = CRC32()
            c.update(Array(long[..<cut]))
            c.update(Array(long[cut...]))
            XCTAssertEqual(c.value, whole)
        }
        XCTAssertEqual(CRC32.hex(0xAB), "000000ab")
    }

    func testHalfToFloatMatchesFloat16ForEveryBitPattern() {
        for h in 0...UInt16.max {
            let want = Float(Float16(bitPattern: h)), got = halfToFloat(h)
            if want.isNaN {
                XCTAssertTrue(got.isNaN, "half \(h)")
            } else {
                XCTAssertEqual(got.bitPattern, want.bitPattern, "half \(h)")
            }
        }
    }

    func testFloat16WideningIsExact() throws {
        let dir = TempDir()
        defer { dir.cleanUp() }
        let values: [Float] = [0, -0, 1, -2.5, 65504, 6.1035156e-05, 5.9604645e-08, 0.333251953125]
        var bytes = NpyHeader.encode(dtype: .float16, shape: [values.count])
        for v in values { let b = Float16(v).bitPattern; bytes += [UInt8(b & 0xFF), UInt8(b >> 8)] }
        try Files.writeAtomically(dir.sub("a.npy"), bytes)
        let a = try NpyArray(path: dir.sub("a.npy"))
        var out = [Float](repeating: .nan, count: values.count)
        out.withUnsafeMutableBufferPointer { a.copyFloats(from: 0, count: values.count, to: $0.baseAddress!) }
        XCTAssertEqual(out, values)
    }
}
