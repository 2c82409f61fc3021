#if canImport(Glibc)
import Glibc
#endif

/// A problem with an input or output file, reported as one line naming the file.
public struct FileError: Error, CustomStringConvertible, Equatable {
    /// The file concerned.
    public let path: String
    /// What is wrong, e.g. "tensor 'llm': expected float32, got I32".
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// Whole-file reads and crash-safe writes, on POSIX calls (no Foundation on hot or core paths).
public enum Files {
    /// Reads a whole file.
    public static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw FileError(path, "cannot stat: \(errnoText())") }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        try bytes.withUnsafeMutableBytes { buf in
            while done < size {
                let n = Glibc.read(fd, buf.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError(path, "read failed: \(errnoText())")
                }
                if n == 0 { throw FileError(path, "file shrank while reading (\(done) of \(size) bytes)") }
                done += n
            }
        }
        return bytes
    }

    /// Writes `bytes` so that `path` holds either its old content or all of the new content, never
    /// a part: write to `path.tmp-PID` (created with `mode`), fsync, rename over `path`, fsync
    /// the directory.
    public static func writeAtomically(_ path: String, _ bytes: UnsafeRawBufferPointer, mode: mode_t = 0o644) throws {
        let tmp = "\(path).tmp-\(getpid())"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { throw FileError(tmp, "cannot create: \(errnoText())") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            var done = 0
            while done < bytes.count {
                let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError(tmp, "write failed: \(errnoText())")
                }
                done += n
            }
            if fsync(fd) != 0 { throw FileError(tmp, "fsync failed: \(errnoText())") }
        }
        if rename(tmp, path) != 0 { throw FileError(path, "rename from \(tmp) failed: \(errnoText())") }
        ok = true
        syncDirectory(of: path)
    }

    /// Writes an array of bytes atomically (see the buffer overload).
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        try bytes.withUnsafeBytes { try writeAtomically(path, $0, mode: mode) }
    }

    /// fsyncs the directory holding `path`, so a rename in it survives a crash.
    public static func syncDirectory(of path: String) {
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Whether a file or directory exists at `path`.
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates a directory and its parents (like `mkdir -p`).
    public static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw FileError(prefix, "cannot create directory: \(errnoText())")
            }
            prefix += "/"
        }
    }

    /// The text of the current `errno`.
    public static func errnoText() -> String { String(cString: strerror(errno)) }
}

@inline(__always) func errnoText() -> String { Files.errnoText() }
