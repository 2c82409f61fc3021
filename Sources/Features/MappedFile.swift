#if canImport(Glibc)
import Glibc
#endif
import Tensors
import Basics

/// A whole file mapped read-only into memory (`mmap`, `MAP_SHARED`, `PROT_READ`). Pages are read
/// on demand and shared with every other process mapping the same file. Unmapped on deinit.
///
/// `@unchecked Sendable` (for the raw `bytes` buffer): immutable after `init`, and the pages are
/// mapped `PROT_READ`, so nothing can write them.
public final class MappedFile: @unchecked Sendable {
    /// The file's path, for errors.
    public let path: String
    /// The file's bytes. Empty for an empty file.
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path`; throws a `FileError` naming the file when it is missing or cannot be mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw FileError(path, errno == ENOENT ? "missing" : "cannot open: \(Files.errnoText())")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw FileError(path, "cannot stat: \(Files.errnoText())") }
        if (st.st_mode & S_IFMT) != S_IFREG { throw FileError(path, "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        if p == MAP_FAILED || p == nil { throw FileError(path, "cannot mmap: \(Files.errnoText())") }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
