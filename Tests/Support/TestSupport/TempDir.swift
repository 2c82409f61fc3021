import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed with everything in it by `cleanUp()`.
public final class TempDir {
    /// The directory's absolute path.
    public let path: String

    /// Creates `/tmp/<prefix>-XXXXXX`.
    public init(prefix: String = "proclip-test") {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            fatalError("mkdtemp /tmp/\(prefix)-XXXXXX: \(String(cString: strerror(errno)))")
        }
        path = String(cString: p)
    }

    /// Removes the directory and its contents.
    public func cleanUp() { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` inside the directory.
    public func sub(_ name: String) -> String { path + "/" + name }
}
