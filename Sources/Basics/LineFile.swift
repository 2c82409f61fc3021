#if canImport(Glibc)
import Glibc
#endif

/// A file that grows by whole lines: lines are buffered and written together, and a write that
/// fails part-way (a full disk) is cut back to the last whole line, so a reader never sees half a
/// line and the failure is an error naming the file, not silent loss. Used from one thread.
public final class LineFile {
    /// The file.
    public let path: String
    private var fd: Int32
    private var pending: [UInt8] = []
    /// Size of the file up to the last line written whole.
    private var committed: off_t

    /// Opens `path` to append to it (`truncate`: empty it first), creating it if missing.
    public init(path: String, truncate: Bool) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
        if fd < 0 { throw FileError(path, "cannot open for writing: \(Files.errnoText())") }
        committed = lseek(fd, 0, SEEK_END)
        if committed < 0 {
            let e = Files.errnoText()
            close(fd)
            throw FileError(path, "cannot seek: \(e)")
        }
        pending.reserveCapacity(64 << 10)
    }

    deinit {
        try? flush()
        close(fd)
    }

    /// Lines buffered and not yet written.
    public var pendingBytes: Int { pending.count }

    /// Buffers `line` (a newline is added).
    public func append(_ line: String) {
        pending.append(contentsOf: line.utf8)
        pending.append(0x0A)
    }

    /// Writes the buffered lines. On failure the file is cut back to its last whole line, the
    /// lines stay buffered (a later flush may succeed), and the error names the file.
    public func flush() throws {
        guard !pending.isEmpty else { return }
        var written = 0
        let failure: String? = pending.withUnsafeBytes { bytes in
            while written < bytes.count {
                let n = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, committed + off_t(written))
                if n < 0 {
                    if errno == EINTR { continue }
                    return Files.errnoText()
                }
                if n == 0 { return "no progress writing" }
                written += n
            }
            return nil
        }
        if let failure {
            _ = ftruncate(fd, committed)
            throw FileError(path, "cannot write \(pending.count) bytes at \(committed): \(failure)")
        }
        committed += off_t(written)
        pending.removeAll(keepingCapacity: true)
    }

    /// Replaces the file's contents with `lines` (atomically: a new file renamed over it) and
    /// drops what was buffered; appending goes on after them.
    public func replace(with lines: [Substring]) throws {
        pending.removeAll(keepingCapacity: true)
        var bytes: [UInt8] = []
        for l in lines {
            bytes.append(contentsOf: l.utf8)
            bytes.append(0x0A)
        }
        try Files.writeAtomically(path, bytes)
        let reopened = open(path, O_WRONLY | O_CLOEXEC)
        if reopened < 0 { throw FileError(path, "cannot reopen: \(Files.errnoText())") }
        close(fd)
        fd = reopened
        committed = off_t(bytes.count)
    }
}
