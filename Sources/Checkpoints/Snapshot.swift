import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// The data section of a checkpoint — every tensor of the plan back to back, byte-shuffled or
/// not — copied out of a `ParameterStore`. Allocated once and touched at once (so a copy never
/// waits on page faults), then refilled for every save: it is exactly the bytes the file's
/// safetensors payload ends with.
final class Snapshot: @unchecked Sendable {
    let plan: CheckpointPlan
    let bytes: UnsafeMutableRawPointer

    init(plan: CheckpointPlan) {
        self.plan = plan
        var raw: UnsafeMutableRawPointer?
        let n = max(plan.dataBytes, 64)
        guard posix_memalign(&raw, 64, n) == 0, let raw else { fatalError("out of memory allocating a \(n)-byte checkpoint snapshot") }
        memset(raw, 0, n)
        bytes = raw
    }

    deinit { free(bytes) }

    /// The data section as a buffer.
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes, count: plan.dataBytes) }

    /// Refuses a state holding NaN or infinity (training diverged), naming the first such value:
    /// such a checkpoint could never be loaded, and committing it would let retention remove the
    /// good ones before it. `path` names the checkpoint in the error.
    func checkFinite(shuffled: Bool, path: String) throws {
        for t in plan.tensors {
            let at = bytes + t.dataOffset
            let bad: Int?
            if shuffled {
                bad = firstNonFinitePlanes(at.assumingMemoryBound(to: UInt8.self), t.count)
            } else {
                bad = firstNonFinite(UnsafePointer(at.assumingMemoryBound(to: Float.self)), t.count)
            }
            if let bad {
                throw FileError(path, "not saved: tensor '\(t.name)' holds a non-finite value at index \(index(bad, in: t.shape))")
            }
        }
    }

    /// Copies (and, with `shuffle`, byte-shuffles) every tensor of `store`. With `parallel`, the
    /// copy is spread over `Parallel`'s threads (the caller's thread included); otherwise it runs
    /// on the calling thread alone.
    func fill(from store: ParameterStore, shuffle: Bool, parallel: Bool) {
        precondition(store.layout.count == plan.layout.count && store.layout.shape == plan.layout.shape,
                     "checkpoint snapshot planned for another model layout")
        let items = plan.tensors.map { CopyItem(src: UnsafePointer(store.pointer($0)), dataOffset: $0.dataOffset, count: $0.count) }
        items.withUnsafeBufferPointer { list in
            let parts = parallel ? Parallel.threads : 1
            let job = SnapshotCopy(items: list.baseAddress!, itemCount: list.count, dst: bytes, shuffle: shuffle, parts: parts)
            if parts > 1 { Parallel.run(parts: parts, job) } else { job.run(part: 0) }
        }
    }
}

/// Index of the first NaN or infinity in the byte planes of `n` float32 values: exponent bits
/// all ones, i.e. the low 7 bits of plane 3 and the top bit of plane 2 all set.
func firstNonFinitePlanes(_ planes: UnsafePointer<UInt8>, _ n: Int) -> Int? {
    let p2 = planes + 2 * n, p3 = planes + 3 * n
    var start = 0
    while start < n {
        let end = min(start + 4096, n)
        var hit: UInt8 = 0
        for i in start..<end { hit |= (p3[i] & 0x7F) == 0x7F && p2[i] >= 0x80 ? 1 : 0 }
        if hit != 0 { return (start..<end).first { (p3[$0] & 0x7F) == 0x7F && p2[$0] >= 0x80 } }
        start = end
    }
    return nil
}

/// One tensor to copy: its floats and where its bytes go in the data section.
struct CopyItem {
    let src: UnsafePointer<Float>
    let dataOffset: Int
    let count: Int
}

/// Part `p` of `parts` copies the same slice (aligned to 16 elements) of every tensor, so each
/// thread moves about the same number of bytes whatever the tensor sizes.
struct SnapshotCopy: PartJob {
    let items: UnsafePointer<CopyItem>
    let itemCount: Int
    let dst: UnsafeMutableRawPointer
    let shuffle: Bool
    let parts: Int

    func run(part p: Int) {
        for k in 0..<itemCount {
            let it = items[k]
            let lo = p == 0 ? 0 : min(it.count, (it.count * p / parts) & ~15)
            let hi = p == parts - 1 ? it.count : min(it.count, (it.count * (p + 1) / parts) & ~15)
            guard lo < hi else { continue }
            let out = dst + it.dataOffset
            if shuffle {
                ByteShuffle.shuffle(UnsafeRawPointer(it.src), out, count: it.count, range: lo..<hi)
            } else {
                memcpy(out + 4 * lo, it.src + lo, 4 * (hi - lo))
            }
        }
    }
}

extension CheckpointFile {
    /// Writes one checkpoint file from a ready header and data section: `path.tmp-<pid>`,
    /// compressed as one LZ4 frame, fsynced, renamed to `path`, directory fsynced. Nothing ever
    /// sits under `path` half-written. Returns the compressed size and the seconds spent in fsync
    /// (file and directory).
    static func write(_ path: String, header: [UInt8], data: UnsafeRawBufferPointer) throws -> (bytes: Int, syncSeconds: Double) {
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(tmp, "cannot create: \(Files.errnoText())") }
        var renamed = false
        defer { if !renamed { unlink(tmp) } }
        let size: Int
        var syncing = 0.0
        do {
            defer { close(fd) }
            let frame = try LZ4FrameWriter(fd: fd, path: tmp, contentSize: header.count + data.count)
            try header.withUnsafeBytes { try frame.write($0) }
            try frame.write(data, stable: true)
            try frame.finish()
            size = frame.compressedBytes
            let t0 = MonotonicClock.now()
            if fsync(fd) != 0 { throw FileError(tmp, "fsync failed: \(Files.errnoText())") }
            syncing = MonotonicClock.now() - t0
        }
        if rename(tmp, path) != 0 { throw FileError(path, "rename from \(tmp) failed: \(Files.errnoText())") }
        renamed = true
        let t1 = MonotonicClock.now()
        try syncDirectory(directory(of: path))
        return (size, syncing + MonotonicClock.now() - t1)
    }

    /// Writes `store` and `meta` to `path` at once, on the calling thread (for a final save, tools
    /// and tests; training uses `CheckpointWriter`, which keeps its snapshot buffer and writes in
    /// the background). Returns the compressed size.
    @discardableResult
    public static func write(_ store: ParameterStore, meta: CheckpointMeta, to path: String, byteShuffle: Bool = true,
                             producer: String) throws -> Int {
        try meta.check(path: path)
        let snapshot = Snapshot(plan: CheckpointPlan(store.layout))
        snapshot.fill(from: store, shuffle: byteShuffle, parallel: true)
        let facts = FileFacts(model: store.layout.shape, byteShuffle: byteShuffle, created: CheckpointFormat.now(), producer: producer)
        try snapshot.checkFinite(shuffled: byteShuffle, path: path)
        let header = snapshot.plan.header(metadata: CheckpointFormat.metadata(meta, facts), shuffled: byteShuffle)
        return try write(path, header: header, data: snapshot.buffer).bytes
    }
}

/// The directory part of `path` (`.` for a bare name).
func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
