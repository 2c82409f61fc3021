import Basics
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// The state of a `ParameterStore` copied out for a save: every tensor of the plan back to back
/// as plain float32 (the data section of an unshuffled file). Allocated and touched once, so a
/// copy never waits on page faults, then refilled for every save. The copy is what training
/// waits for, so it is a plain `memcpy`; byte shuffling, when on, happens tensor by tensor while
/// writing, on the writer thread, through a scratch buffer the size of the largest tensor.
///
/// `@unchecked Sendable`: used by one thread at a time, handed over by `CheckpointWriter`'s monitor
/// (`writing`, `snapshotReady`): the caller's thread fills it (`save`) or the writer thread does
/// (`beginSave`); only the writer thread writes it out, and `scratch` is the writer thread's.
final class Snapshot: @unchecked Sendable {
    let plan: CheckpointPlan
    let bytes: UnsafeMutableRawPointer
    private var scratch: UnsafeMutableRawPointer?

    init(plan: CheckpointPlan) {
        self.plan = plan
        bytes = Snapshot.allocate(plan.dataBytes)
    }

    deinit {
        free(bytes)
        free(scratch)
    }

    private static func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        let n = max(count, 64)
        guard posix_memalign(&raw, 64, n) == 0, let raw else { fatalError("out of memory allocating \(n) bytes for a checkpoint snapshot") }
        memset(raw, 0, n)
        return raw
    }

    /// Copies every tensor of `store`. With `parallel`, the copy is spread over `Parallel`'s
    /// threads (the caller's included); otherwise it runs on the calling thread alone.
    func fill(from store: ParameterStore, parallel: Bool) {
        precondition(store.layout.count == plan.layout.count && store.layout.shape == plan.layout.shape,
                     "checkpoint snapshot planned for another model layout")
        let items = plan.tensors.map { CopyItem(src: UnsafePointer(store.pointer($0)), dataOffset: $0.dataOffset, count: $0.count) }
        items.withUnsafeBufferPointer { list in
            let parts = parallel ? Parallel.threads : 1
            let job = SnapshotCopy(items: list.baseAddress!, itemCount: list.count, dst: bytes, parts: parts)
            if parts > 1 { Parallel.run(parts: parts, job) } else { job.run(part: 0) }
        }
    }

    /// Refuses a state holding NaN or infinity (training diverged), naming the first such value:
    /// such a checkpoint could never be loaded, and committing it would let retention remove the
    /// good ones before it. `path` names the checkpoint in the error.
    func checkFinite(path: String) throws {
        for t in plan.tensors {
            if let bad = firstNonFinite(UnsafePointer((bytes + t.dataOffset).assumingMemoryBound(to: Float.self)), t.count) {
                throw FileError(path, "not saved: tensor '\(t.name)' holds a non-finite value at index \(index(bad, in: t.shape))")
            }
        }
    }

    /// Writes the checkpoint file at `path` (see `CheckpointFile.commit`): `header`, then every
    /// tensor, byte-shuffled when `shuffled`. Returns the compressed size and the fsync time.
    func write(to path: String, header: [UInt8], shuffled: Bool) throws -> (bytes: Int, syncSeconds: Double) {
        if shuffled && scratch == nil { scratch = Snapshot.allocate(4 * plan.largest) }
        return try CheckpointFile.commit(path, contentSize: header.count + plan.dataBytes) { frame in
            try header.withUnsafeBytes { try frame.write($0) }
            guard shuffled, let scratch else {
                return try frame.write(UnsafeRawBufferPointer(start: bytes, count: plan.dataBytes), stable: true)
            }
            for t in plan.tensors {
                ByteShuffle.shuffle(bytes + t.dataOffset, scratch, count: t.count, range: 0..<t.count)
                try frame.write(UnsafeRawBufferPointer(start: scratch, count: 4 * t.count))
            }
        }
    }
}

/// One tensor to copy: its floats and where its bytes go in the snapshot.
struct CopyItem {
    let src: UnsafePointer<Float>
    let dataOffset: Int
    let count: Int
}

/// Part `p` of `parts` copies the same slice of every tensor, so each thread moves about the
/// same number of bytes whatever the tensor sizes.
struct SnapshotCopy: PartJob {
    let items: UnsafePointer<CopyItem>
    let itemCount: Int
    let dst: UnsafeMutableRawPointer
    let parts: Int

    func run(part p: Int) {
        for k in 0..<itemCount {
            let it = items[k]
            let lo = it.count * p / parts, hi = it.count * (p + 1) / parts
            if lo < hi { memcpy(dst + it.dataOffset + 4 * lo, it.src + lo, 4 * (hi - lo)) }
        }
    }
}

extension CheckpointFile {
    /// Writes one checkpoint file: `path.tmp-<pid>` receives one LZ4 frame of `contentSize`
    /// bytes produced by `body`, is fsynced and renamed to `path`, and the directory is fsynced.
    /// Nothing ever sits under `path` half-written. Returns the compressed size and the seconds
    /// spent in fsync (file and directory).
    static func commit(_ path: String, contentSize: Int, _ body: (LZ4FrameWriter) throws -> Void) throws -> (bytes: Int, syncSeconds: Double) {
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(tmp, "cannot create: \(Files.errnoText())") }
        var renamed = false
        defer { if !renamed { unlink(tmp) } }
        let size: Int
        var syncing = 0.0
        do {
            defer { close(fd) }
            let frame = try LZ4FrameWriter(fd: fd, path: tmp, contentSize: contentSize)
            try body(frame)
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
    /// the background). Refuses non-finite values. Returns the compressed size.
    @discardableResult
    public static func write(_ store: ParameterStore, meta: CheckpointMeta, to path: String, byteShuffle: Bool = true,
                             producer: String) throws -> Int {
        try meta.check(path: path)
        let snapshot = Snapshot(plan: CheckpointPlan(store.layout))
        snapshot.fill(from: store, parallel: true)
        try snapshot.checkFinite(path: path)
        let facts = FileFacts(model: store.layout.shape, byteShuffle: byteShuffle, created: CheckpointFormat.now(), producer: producer)
        let header = snapshot.plan.header(metadata: CheckpointFormat.metadata(meta, facts), shuffled: byteShuffle)
        return try snapshot.write(to: path, header: header, shuffled: byteShuffle).bytes
    }
}

/// The directory part of `path` (`.` for a bare name).
func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
