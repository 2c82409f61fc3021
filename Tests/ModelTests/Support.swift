import Foundation
import Model
import Tensors
import XCTest

/// Fails unless ‖actual − expected‖ / ‖expected‖ ≤ rtol; the message gives the largest absolute
/// difference and the first index beyond tolerance.
func assertClose(_ actual: [Float], _ expected: [Float], rtol: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var num = 0.0, den = 0.0, maxDiff = 0.0, maxAt = -1
    for i in actual.indices {
        let d = Double(actual[i]) - Double(expected[i])
        num += d * d
        den += Double(expected[i]) * Double(expected[i])
        if abs(d) > maxDiff { maxDiff = abs(d); maxAt = i }
    }
    let rel = den > 0 ? (num / den).squareRoot() : num.squareRoot()
    if !(rel <= rtol) {
        let scale = den > 0 ? (den / Double(expected.count)).squareRoot() : 1
        let firstBad = actual.indices.first { abs(Double(actual[$0]) - Double(expected[$0])) > rtol * scale } ?? maxAt
        XCTFail("\(what): relative error \(rel) > \(rtol); max |diff| \(maxDiff) at \(maxAt); first bad index \(firstBad) "
                + "(got \(actual[max(firstBad, 0)]), want \(expected[max(firstBad, 0)]))", file: file, line: line)
    }
}

/// Fails unless |actual − expected| ≤ rtol·|expected| (+ a tiny absolute floor).
func assertClose(_ actual: Double, _ expected: Double, rtol: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    let err = abs(actual - expected)
    if !(err <= rtol * abs(expected) + 1e-12) {
        XCTFail("\(what): got \(actual), want \(expected) (relative error \(err / max(abs(expected), 1e-300)))", file: file, line: line)
    }
}

/// The repository root (this file is Tests/ModelTests/Support.swift).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The golden fixtures (Tests/ModelTests/Fixtures; its README says what each file holds).
let fixturesDirectory: String = repositoryRoot + "/Tests/ModelTests/Fixtures"

/// Random float32 values, uniform in [-scale, scale].
func randomFloats(_ n: Int, _ rng: inout SplitMix64, scale: Double = 1) -> [Float] {
    (0..<n).map { _ in Float((2 * rng.uniform() - 1) * scale) }
}

/// A unit-norm random direction.
func randomDirection(_ n: Int, _ rng: inout SplitMix64) -> [Float] {
    var d = (0..<n).map { _ in Float(rng.normal()) }
    let norm = d.reduce(0) { $0 + Double($1 * $1) }.squareRoot()
    for i in d.indices { d[i] = Float(Double(d[i]) / norm) }
    return d
}

/// Central-difference check of a gradient along random directions: perturbs `x` (in place,
/// restored) by ±h·d and compares (f(x+hd) − f(x−hd)) / 2h with ⟨grad, d⟩.
func checkDirectionalDerivative(
    _ what: String, x: UnsafeMutablePointer<Float>, count: Int, grad: [Float], h: Float = 1e-2,
    directions: Int = 3, rtol: Double = 2e-2, seed: UInt64 = 99, f: () -> Double,
    file: StaticString = #filePath, line: UInt = #line
) {
    var rng = SplitMix64(seed: seed)
    let saved = Array(UnsafeBufferPointer(start: x, count: count))
    for k in 0..<directions {
        let d = randomDirection(count, &rng)
        for i in 0..<count { x[i] = saved[i] + h * d[i] }
        let fp = f()
        for i in 0..<count { x[i] = saved[i] - h * d[i] }
        let fm = f()
        for i in 0..<count { x[i] = saved[i] }
        let numeric = (fp - fm) / (2 * Double(h))
        let analytic = zip(grad, d).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let gnorm = grad.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let err = abs(numeric - analytic)
        if !(err <= rtol * max(abs(analytic), 0.1 * gnorm) + 1e-6) {
            XCTFail("\(what): direction \(k): finite difference \(numeric) vs analytic \(analytic) (|grad| \(gnorm))", file: file, line: line)
        }
    }
}

/// Central-difference check in float64 (for the loss side): perturbs `x` by ±h·d along random
/// directions and compares with ⟨grad, d⟩.
func checkDirectionalDerivative64(
    _ what: String, x: UnsafeMutablePointer<Double>, count: Int, grad: [Double], h: Double = 1e-5,
    directions: Int = 3, rtol: Double = 1e-6, seed: UInt64 = 99, f: () -> Double,
    file: StaticString = #filePath, line: UInt = #line
) {
    var rng = SplitMix64(seed: seed)
    let saved = Array(UnsafeBufferPointer(start: x, count: count))
    for k in 0..<directions {
        var d = (0..<count).map { _ in rng.normal() }
        let norm = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        d = d.map { $0 / norm }
        for i in 0..<count { x[i] = saved[i] + h * d[i] }
        let fp = f()
        for i in 0..<count { x[i] = saved[i] - h * d[i] }
        let fm = f()
        for i in 0..<count { x[i] = saved[i] }
        let numeric = (fp - fm) / (2 * h)
        let analytic = zip(grad, d).reduce(0.0) { $0 + $1.0 * $1.1 }
        let gnorm = grad.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        if !(abs(numeric - analytic) <= rtol * max(abs(analytic), 0.1 * gnorm) + 1e-9) {
            XCTFail("\(what): direction \(k): finite difference \(numeric) vs analytic \(analytic) (|grad| \(gnorm))", file: file, line: line)
        }
    }
}

/// Fails unless ‖actual − expected‖ / ‖expected‖ ≤ rtol (float64 arrays).
func assertClose(_ actual: [Double], _ expected: [Double], rtol: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    assertClose(actual.map { Float($0) }, expected.map { Float($0) }, rtol: max(rtol, 1e-7), what, file: file, line: line)
    var num = 0.0, den = 0.0
    for i in actual.indices { num += (actual[i] - expected[i]) * (actual[i] - expected[i]); den += expected[i] * expected[i] }
    let rel = den > 0 ? (num / den).squareRoot() : num.squareRoot()
    if !(rel <= rtol) { XCTFail("\(what): relative error \(rel) > \(rtol)", file: file, line: line) }
}
