import Foundation
import XCTest

/// The repository root (this file is Tests/ProclipTests/Support.swift).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The `proclip` executable built beside the test bundle.
let proclipExecutable: String = {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("proclip").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return dir.appendingPathComponent("proclip").path
}()

/// Output of a finished child process.
struct Finished {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a command to completion (with a time limit) and captures its output.
func runProcess(_ executable: String, _ arguments: [String], timeout: TimeInterval = 300,
                file: StaticString = #filePath, line: UInt = #line) throws -> Finished {
    guard FileManager.default.isExecutableFile(atPath: executable) || executable.hasPrefix("/usr/bin/env") else {
        XCTFail("\(executable) is not built", file: file, line: line)
        return Finished(status: -1, stdout: "", stderr: "")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot)
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let outBox = Box(), errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        p.terminate()
        XCTFail("\(executable) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s", file: file, line: line)
    }
    p.waitUntilExit()
    return Finished(status: p.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
                    stderr: String(decoding: errBox.data, as: UTF8.self))
}

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
