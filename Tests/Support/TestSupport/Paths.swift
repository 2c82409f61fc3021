#if canImport(Glibc)
import Glibc
#endif

/// The repository root (this file is Tests/Support/TestSupport/Paths.swift).
public let repositoryRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4)
    return parts.joined(separator: "/")
}()

/// The `proclip` executable that `swift test` builds beside the test bundle (the test runner is
/// an executable in the build folder on Linux). Where it is missing, the path it should have:
/// `startProcess` and `runProcess` then fail naming it.
public let proclipExecutable: String = {
    let runner = executablePath() ?? CommandLine.arguments[0]
    var folder = runner.split(separator: "/", omittingEmptySubsequences: false).dropLast()
    let expected = folder.joined(separator: "/") + "/proclip"
    for _ in 0..<2 {
        let candidate = folder.joined(separator: "/") + "/proclip"
        if access(candidate, X_OK) == 0 { return candidate }
        folder = folder.dropLast()
    }
    return expected
}()

/// The running executable's path, symbolic links resolved.
private func executablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    return n > 0 ? String(cString: buffer) : nil
}
