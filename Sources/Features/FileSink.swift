#if canImport(Glibc)
import Glibc
#endif
import Tensors
import Basics

/// A new file written front to back, checksummed as it goes (CRC-32) and fsynced on `finish`.
/// Used inside a staging directory that is renamed into place only when everything is written.
final class FileSink {
    let path: String
    private var fd: Int32
    private var crc = CRC32()
    private var bytes = 0

    /// Creates `path`; refuses to overwrite.
    init(_ path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path, "cannot create: \(Files.errnoText())") }
    }

    deinit { if fd >= 0 { close(fd) } }

    func write(_ buf: UnsafeRawBufferPointer) throws {
        crc.update(buf)
        var done = 0
        while done < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "write failed: \(Files.errnoText())")
            }
            done += n
        }
        bytes += buf.count
    }

    func write(_ array: [UInt8]) throws { try array.withUnsafeBytes { try write($0) } }

    /// Writes `count` floats as `dtype` (float32 as is, float16 rounded to nearest even).
    func writeFloats(_ src: UnsafeBufferPointer<Float>, as dtype: NpyDType) throws {
        switch dtype {
        case .float32:
            try write(UnsafeRawBufferPointer(src))
        case .float16:
            var chunk = [UInt16](repeating: 0, count: min(src.count, 1 << 16))
            var i = 0
            while i < src.count {
                let n = min(chunk.count, src.count - i)
                for j in 0..<n { chunk[j] = Float16(src[i + j]).bitPattern.littleEndian }
                try chunk.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(2 * n)])) }
                i += n
            }
        case .int32:
            preconditionFailure("floats cannot be written as int32")
        }
    }

    /// fsyncs and closes; returns the file's size and checksum.
    func finish() throws -> FileEntry {
        if fsync(fd) != 0 { throw FileError(path, "fsync failed: \(Files.errnoText())") }
        close(fd)
        fd = -1
        return FileEntry(bytes: bytes, crc32: CRC32.hex(crc.value))
    }
}

enum Tree {
    /// Removes a file or a directory tree (like `rm -rf`); missing paths are fine.
    static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if let dir = opendir(path) {
                var names: [String] = []
                while let e = readdir(dir) {
                    let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(dir)
                for n in names { remove(path + "/" + n) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// fsyncs a directory so the entries created or renamed in it survive a crash.
    static func sync(_ dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw FileError(dir, "cannot open directory: \(Files.errnoText())") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw FileError(dir, "fsync failed: \(Files.errnoText())") }
    }

    /// Renames `from` to `to` (which must not exist as a non-empty directory) and fsyncs the parent.
    static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 { throw FileError(to, "rename from \(from) failed: \(Files.errnoText())") }
        Files.syncDirectory(of: to)
    }
}
