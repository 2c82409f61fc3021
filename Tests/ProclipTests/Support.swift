import Foundation
import TestSupport
import XCTest

/// The float32 tensors of a safetensors file (a run's final.safetensors), by name.
func loadTensors(_ path: String) throws -> [String: [Float]] {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    let n = Int(bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    let header = try XCTUnwrap(JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + n))) as? [String: Any])
    var out: [String: [Float]] = [:]
    for (name, v) in header where name != "__metadata__" {
        let range = try XCTUnwrap((v as? [String: Any])?["data_offsets"] as? [Int])
        out[name] = bytes.subdata(in: (8 + n + range[0])..<(8 + n + range[1])).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
    return out
}

/// ‖a − b‖ / ‖b‖ over every tensor together (`whole`) and the largest for one tensor (`worst`).
func relativeDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> (whole: Double, worst: Double) {
    var num = 0.0, den = 0.0, worst = 0.0
    for (k, x) in b {
        guard let y = a[k], y.count == x.count else { return (.infinity, .infinity) }
        var n = 0.0, d = 0.0
        for i in x.indices { n += Double(x[i] - y[i]) * Double(x[i] - y[i]); d += Double(x[i]) * Double(x[i]) }
        num += n
        den += d
        worst = max(worst, d > 0 ? (n / d).squareRoot() : n.squareRoot())
    }
    return ((num / den).squareRoot(), worst)
}

/// The lines of a run's metrics.jsonl: each step and the Unix time at which it ended.
func metricsSteps(_ runDir: String) throws -> [(step: Int, time: Double)] {
    try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        return (try XCTUnwrap(obj["step"] as? Int, String(line)), try XCTUnwrap(obj["time"] as? Double, String(line)))
    }
}

/// Checks that the run in `runDir` resumed from the checkpoint of `step`: its metrics.jsonl has
/// steps 1…`last` once each, those up to `step` kept from the interrupted run (ended before
/// `resumedAt`, a Unix time between the two runs) and the later ones computed by the resumed run.
func assertResumed(_ runDir: String, from step: Int, at resumedAt: Double, last: Int,
                   file: StaticString = #filePath, line: UInt = #line) throws {
    let lines = try metricsSteps(runDir)
    XCTAssertEqual(lines.map(\.step), Array(1...last), "one metrics line per step, none twice", file: file, line: line)
    let before = lines.filter { $0.time < resumedAt }.map(\.step)
    XCTAssertEqual(before, Array(1...step), "the steps the resumed run did not recompute", file: file, line: line)
}

/// The step of a checkpoint file name (`ckpt-000000000030.lz4`, `ckpt-000000000012-end.lz4`).
func checkpointStep(_ name: String) -> Int { integers(in: name).first ?? -1 }
