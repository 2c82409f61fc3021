import Basics
import CLZ4
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Streams bytes into one LZ4 frame written to a file descriptor: block size 4 MB, linked blocks,
/// a checksum after every block and one over the whole content, the content size in the frame
/// header (so `lz4 -d` and proclip's reader know the exact length before decoding).
///
/// Compression level is LZ4's fast mode, the one `lz4 -1` uses.
final class LZ4FrameWriter {
    let path: String
    private let fd: Int32
    private var ctx: OpaquePointer?
    private var prefs = LZ4F_preferences_t()
    private let out: UnsafeMutableRawPointer
    private let outCapacity: Int
    /// Bytes of compressed frame written so far.
    private(set) var compressedBytes = 0

    /// The largest input handed to LZ4 in one call (one frame block).
    static let chunk = 4 << 20

    /// Starts a frame of exactly `contentSize` bytes on `fd` (owned by the caller); `path` names
    /// it in errors.
    init(fd: Int32, path: String, contentSize: Int) throws {
        self.fd = fd
        self.path = path
        prefs.frameInfo.blockSizeID = LZ4F_max4MB
        prefs.frameInfo.blockMode = LZ4F_blockLinked
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled
        prefs.frameInfo.contentSize = UInt64(contentSize)
        prefs.compressionLevel = 0
        outCapacity = max(LZ4F_compressBound(LZ4FrameWriter.chunk, &prefs), Int(LZ4F_HEADER_SIZE_MAX))
        out = UnsafeMutableRawPointer.allocate(byteCount: outCapacity, alignment: 64)
        let rc = LZ4F_createCompressionContext(&ctx, UInt32(LZ4F_VERSION))
        if LZ4F_isError(rc) != 0 { throw FileError(path, "cannot start LZ4 compression: \(lz4ErrorName(rc))") }
        try emit(LZ4F_compressBegin(ctx, out, outCapacity, &prefs))
    }

    deinit {
        LZ4F_freeCompressionContext(ctx)
        out.deallocate()
    }

    /// Compresses and writes `bytes`. With `stable`, the bytes stay valid and unchanged until
    /// `finish` (LZ4 then reads back-references from them instead of keeping its own copy).
    func write(_ bytes: UnsafeRawBufferPointer, stable: Bool = false) throws {
        guard let base = bytes.baseAddress else { return }
        var opts = LZ4F_compressOptions_t()
        opts.stableSrc = stable ? 1 : 0
        var done = 0
        while done < bytes.count {
            let n = min(LZ4FrameWriter.chunk, bytes.count - done)
            try emit(LZ4F_compressUpdate(ctx, out, outCapacity, base + done, n, &opts))
            done += n
        }
    }

    /// Ends the frame (end mark and content checksum). Does not fsync or close.
    func finish() throws {
        try emit(LZ4F_compressEnd(ctx, out, outCapacity, nil))
    }

    private func emit(_ rc: Int) throws {
        if LZ4F_isError(rc) != 0 { throw FileError(path, "LZ4 compression failed: \(lz4ErrorName(rc))") }
        try writeAll(fd, UnsafeRawBufferPointer(start: out, count: rc), path: path)
        compressedBytes += rc
    }
}

/// Decodes one LZ4 frame from a file, pulling exactly the bytes asked for, and checks every
/// block checksum, the content checksum, the content size and that nothing follows the frame.
/// Every failure is a one-line `FileError` naming the file.
final class LZ4FrameReader {
    let path: String
    private let fd: Int32
    private var ctx: OpaquePointer?
    private let input: UnsafeMutableRawPointer
    private let inputCapacity = 1 << 20
    private var inputStart = 0, inputEnd = 0
    /// Size of the compressed file.
    let fileBytes: Int
    /// Compressed bytes consumed so far.
    private(set) var consumed = 0
    /// Decoded bytes handed out so far.
    private(set) var produced = 0
    /// The content size the frame header declares.
    private(set) var contentSize = 0
    private var ended = false

    /// The magic number opening every LZ4 frame.
    static let magic: [UInt8] = [0x04, 0x22, 0x4D, 0x18]

    /// Opens `path` and reads the frame header.
    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path, errno == ENOENT ? "missing" : "cannot open: \(Files.errnoText())") }
        var st = stat()
        if fstat(fd, &st) != 0 { close(fd); throw FileError(path, "cannot stat: \(Files.errnoText())") }
        fileBytes = Int(st.st_size)
        input = UnsafeMutableRawPointer.allocate(byteCount: inputCapacity, alignment: 64)
        let rc = LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))
        if LZ4F_isError(rc) != 0 { throw FileError(path, "cannot start LZ4 decompression: \(lz4ErrorName(rc))") }
        try readHeader()
    }

    deinit {
        LZ4F_freeDecompressionContext(ctx)
        input.deallocate()
        close(fd)
    }

    private func readHeader() throws {
        while inputEnd < min(Int(LZ4F_HEADER_SIZE_MAX), fileBytes) {
            guard try refill() else { break }
        }
        guard inputEnd >= 4 else { throw FileError(path, "not an LZ4 frame: file is \(fileBytes) bytes") }
        let head = (0..<4).map { input.load(fromByteOffset: $0, as: UInt8.self) }
        guard head == LZ4FrameReader.magic else {
            let hex = head.map { String($0, radix: 16) }.joined(separator: " ")
            throw FileError(path, "not an LZ4 frame: starts with bytes \(hex), expected 04 22 4d 18")
        }
        var info = LZ4F_frameInfo_t()
        var size = inputEnd
        let rc = LZ4F_getFrameInfo(ctx, &info, input, &size)
        if LZ4F_isError(rc) != 0 { throw lz4ErrorName(rc) == "ERROR_frameHeader_incomplete" ? truncated() : corrupt(rc) }
        inputStart = size
        consumed = size
        guard info.contentSize > 0, info.contentSize <= UInt64(Int.max) else {
            throw FileError(path, "LZ4 frame header has no content size (not written by proclip)")
        }
        contentSize = Int(info.contentSize)
    }

    /// Appends file bytes to the input buffer; false at end of file.
    private func refill() throws -> Bool {
        if inputStart == inputEnd { inputStart = 0; inputEnd = 0 }
        if inputEnd == inputCapacity {
            guard inputStart > 0 else { return true }
            memmove(input, input + inputStart, inputEnd - inputStart)
            inputEnd -= inputStart
            inputStart = 0
        }
        while true {
            let n = Glibc.read(fd, input + inputEnd, inputCapacity - inputEnd)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "read failed: \(Files.errnoText())")
            }
            inputEnd += n
            return n > 0
        }
    }

    /// Fills `count` bytes at `dst` with the next decoded content.
    func read(into dst: UnsafeMutableRawPointer, count: Int) throws {
        guard produced + count <= contentSize else {
            throw FileError(path, "content is \(contentSize) bytes; asked for bytes up to \(produced + count)")
        }
        var got = 0
        while got < count {
            // At the end of the file, one more call may still flush output LZ4 holds.
            let atEnd = try inputStart == inputEnd && !refill()
            var dstSize = count - got
            var srcSize = inputEnd - inputStart
            let rc = LZ4F_decompress(ctx, dst + got, &dstSize, input + inputStart, &srcSize, nil)
            if LZ4F_isError(rc) != 0 { throw corrupt(rc) }
            if atEnd && dstSize == 0 { throw truncated() }
            inputStart += srcSize
            consumed += srcSize
            got += dstSize
            if rc == 0 { ended = true }
            if rc == 0 && got < count {
                throw FileError(path, "LZ4 frame ends after \(produced + got) content bytes, its header says \(contentSize)")
            }
        }
        produced += count
    }

    /// Decodes and discards `count` bytes into `scratch` (of `scratchBytes`).
    func skip(_ count: Int, scratch: UnsafeMutableRawPointer, scratchBytes: Int) throws {
        var left = count
        while left > 0 {
            let n = min(left, scratchBytes)
            try read(into: scratch, count: n)
            left -= n
        }
    }

    /// Checks that the content ended exactly, the frame's end mark and content checksum follow,
    /// and nothing follows the frame.
    func finish() throws {
        guard produced == contentSize else {
            throw FileError(path, "only \(produced) of \(contentSize) content bytes were read")
        }
        var spare = [UInt8](repeating: 0, count: 16)
        while !ended {
            if inputStart == inputEnd, !(try refill()) { throw truncated() }
            var dstSize = spare.count
            var srcSize = inputEnd - inputStart
            let rc = spare.withUnsafeMutableBytes { LZ4F_decompress(ctx, $0.baseAddress, &dstSize, input + inputStart, &srcSize, nil) }
            if LZ4F_isError(rc) != 0 { throw corrupt(rc) }
            inputStart += srcSize
            consumed += srcSize
            if dstSize > 0 { throw FileError(path, "LZ4 frame holds more than the \(contentSize) content bytes its header declares") }
            ended = rc == 0
        }
        if consumed < fileBytes {
            throw FileError(path, "\(fileBytes - consumed) unexpected bytes after the end of the LZ4 frame")
        }
    }

    private func truncated() -> FileError {
        FileError(path, "truncated: the file ends after \(fileBytes) bytes, inside the LZ4 frame (\(produced) of \(contentSize) content bytes decoded)")
    }

    private func corrupt(_ rc: Int) -> FileError {
        let name = lz4ErrorName(rc)
        let what: String
        switch name {
        case "ERROR_blockChecksum_invalid": what = "an LZ4 block checksum does not match"
        case "ERROR_contentChecksum_invalid": what = "the LZ4 content checksum does not match"
        case "ERROR_headerChecksum_invalid": what = "the LZ4 frame header checksum does not match"
        case "ERROR_frameSize_wrong": what = "the LZ4 frame's content size differs from its header"
        default: what = "LZ4 decoding failed (\(name))"
        }
        return FileError(path, "corrupt: \(what) (after \(produced) of \(contentSize) content bytes)")
    }
}

/// LZ4's name for an error code, e.g. `ERROR_blockChecksum_invalid`.
func lz4ErrorName(_ rc: Int) -> String {
    guard let p = LZ4F_getErrorName(rc) else { return "error \(rc)" }
    return String(String(cString: p).map { $0 == "\n" ? " " : $0 })
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    guard let base = bytes.baseAddress else { return }
    var done = 0
    while done < bytes.count {
        let n = Glibc.write(fd, base + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(path, "write failed: \(Files.errnoText())")
        }
        done += n
    }
}
