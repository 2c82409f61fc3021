import Basics
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// How a `CheckpointWriter` writes.
public struct CheckpointOptions: Sendable {
    /// Newest checkpoints kept besides every phase-end one (at least 1).
    public var keepLast: Int = 3
    /// Byte-shuffle float tensors before compression (about 8% smaller files of trained
    /// float32 state; see docs/checkpoints.md). Recorded in each file's metadata.
    public var byteShuffle: Bool = true
    /// proclip release written into each file.
    public var producer: String
    /// How much lower than the trainer the writer thread runs while compressing (nice steps),
    /// so compression takes idle CPU rather than the step's.
    public var backgroundNice: Int32 = 10

    /// Options with the defaults above.
    public init(producer: String) { self.producer = producer }
}

/// A checkpoint written, or one that failed.
public enum SaveOutcome: Sendable {
    /// The checkpoint is on disk and `latest` names it.
    case saved(SavedCheckpoint)
    /// Nothing was written for `step` (`latest` still names the previous checkpoint).
    case failed(step: Int, error: FileError)
}

/// One checkpoint on disk, with what writing it cost.
public struct SavedCheckpoint: Sendable, Equatable {
    /// Full path of the file.
    public let path: String
    /// Its global step, and whether it ends a phase (`-end` in the name).
    public let step: Int
    public let phaseEnd: Bool
    /// Safetensors payload bytes and compressed file bytes.
    public let contentBytes: Int
    public let fileBytes: Int
    /// Time to copy the state out of the store (the part training may wait for).
    public let snapshotSeconds: Double
    /// Time to compress, write, fsync, rename, update `latest` and apply retention.
    public let writeSeconds: Double
    /// Of `writeSeconds`, the time fsync of the file and its directory took.
    public let syncSeconds: Double
    /// CPU time (user and system) the writer thread used for the write: what a save takes from
    /// training on a host whose cores are all busy.
    public let cpuSeconds: Double
    /// Checkpoints removed by retention after this one was written.
    public let removed: [String]
}

/// Writes checkpoints of one model into one directory, in the background.
///
/// A save is two stages. The **snapshot** copies the parameters, EMA teacher and both Adam
/// moments into a buffer the writer owns (allocated once, the size of the state) with `memcpy`;
/// the store must not change until it is done. The **write** runs on a background thread at
/// lower priority: byte shuffle (tensor by tensor, through a scratch buffer the size of the
/// largest tensor), LZ4, and the commit — temporary name, fsync, rename, directory fsync, then
/// `latest` (atomically), then retention. A state holding NaN or infinity is refused, not
/// written. One save is in flight at a time; a new save first waits for the previous write.
///
/// Two ways to take the snapshot:
/// - `save(_:meta:)` copies on the calling thread, spread over `Parallel`'s threads, and returns
///   when the store may change again (the training stall is the copy).
/// - `beginSave(_:meta:)` returns at once and the writer thread copies; call `waitForSnapshot()`
///   before the store next changes (before the optimizer step). Forward and backward only read
///   the store, so the copy overlaps them — worth it only when a core is free for the copy
///   (see docs/checkpoints.md for measurements).
///
/// When to save is the caller's decision (the coordinator's). Results come back through
/// `takeOutcomes()` and `finish()`. All methods are for one calling thread.
///
/// `@unchecked Sendable` (the writer thread captures it): what both threads touch is guarded by
/// `monitor`; `thread` is the calling thread's alone; the snapshot changes hands as `Snapshot` says.
public final class CheckpointWriter: @unchecked Sendable {
    /// Where checkpoints go.
    public let directory: CheckpointDirectory
    /// How they are written.
    public let options: CheckpointOptions
    /// `*.tmp-<pid>` files of dead writers removed when the writer was created.
    public let cleaned: [String]
    private let snapshot: Snapshot
    private let monitor = Monitor()
    private var thread: JoinableThread?
    // Guarded by `monitor`:
    private var snapshotReady = true
    private var writing = false
    private var outcomes: [SaveOutcome] = []

    /// A writer for models of `layout` into `directory` (created if missing). Removes stale
    /// temporaries of crashed writers and allocates the snapshot buffer.
    public init(directory path: String, layout: ParameterLayout, options: CheckpointOptions) throws {
        try Files.makeDirectories(path)
        directory = CheckpointDirectory(path)
        self.options = options
        cleaned = try directory.removeStaleTemporaries()
        snapshot = Snapshot(plan: CheckpointPlan(layout))
    }

    deinit { thread?.join() }

    /// Bytes of the snapshot buffer (the state without the layout's padding).
    public var snapshotBytes: Int { snapshot.plan.dataBytes }

    /// Whether a save is still copying or writing.
    public var isBusy: Bool { monitor.withLock { writing } }

    /// Saves `store` at `meta`: waits for the previous save's write, copies the state on this
    /// thread (all `Parallel` threads helping), starts the write in the background, returns.
    /// Returns the seconds spent waiting for the previous write and copying.
    @discardableResult
    public func save(_ store: ParameterStore, meta: CheckpointMeta) -> (waited: Double, snapshot: Double) {
        let waited = waitIdle()
        let t0 = MonotonicClock.now()
        snapshot.fill(from: store, parallel: true)
        let copy = MonotonicClock.now() - t0
        start(meta: meta, copyFrom: nil, snapshotSeconds: copy)
        return (waited, copy)
    }

    /// Starts a save whose snapshot the writer thread takes. `store` must not change until
    /// `waitForSnapshot()` returns. Returns the seconds spent waiting for the previous write.
    @discardableResult
    public func beginSave(_ store: ParameterStore, meta: CheckpointMeta) -> Double {
        let waited = waitIdle()
        monitor.withLock { snapshotReady = false }
        start(meta: meta, copyFrom: store, snapshotSeconds: 0)
        return waited
    }

    /// Waits until the snapshot of the save in flight is taken (at once when none is); returns
    /// the seconds waited.
    @discardableResult
    public func waitForSnapshot() -> Double {
        let t0 = MonotonicClock.now()
        monitor.withLock { monitor.wait { snapshotReady } }
        return MonotonicClock.now() - t0
    }

    /// Outcomes of the saves finished since the last call.
    public func takeOutcomes() -> [SaveOutcome] {
        monitor.withLock {
            defer { outcomes = [] }
            return outcomes
        }
    }

    /// Waits for the save in flight, then returns every outcome not yet taken.
    public func finish() -> [SaveOutcome] {
        waitIdle()
        return takeOutcomes()
    }

    @discardableResult
    private func waitIdle() -> Double {
        let t0 = MonotonicClock.now()
        monitor.withLock { monitor.wait { !writing } }
        thread?.join()
        thread = nil
        return MonotonicClock.now() - t0
    }

    private func start(meta: CheckpointMeta, copyFrom store: ParameterStore?, snapshotSeconds: Double) {
        monitor.withLock { writing = true }
        let facts = FileFacts(model: snapshot.plan.layout.shape, byteShuffle: options.byteShuffle,
                              created: CheckpointFormat.now(), producer: options.producer)
        thread = JoinableThread("checkpoint writer") { [self] in
            var copy = snapshotSeconds
            if let store {
                let t0 = MonotonicClock.now()
                snapshot.fill(from: store, parallel: false)
                copy = MonotonicClock.now() - t0
                monitor.withLock {
                    snapshotReady = true
                    monitor.broadcast()
                }
            }
            lowerThreadPriority(options.backgroundNice)
            let outcome = write(meta: meta, facts: facts, snapshotSeconds: copy, cpuBefore: threadCPUSeconds())
            monitor.withLock {
                outcomes.append(outcome)
                writing = false
                monitor.broadcast()
            }
        }
    }

    /// The background half of a save: file, `latest`, retention.
    private func write(meta: CheckpointMeta, facts: FileFacts, snapshotSeconds: Double, cpuBefore: Double) -> SaveOutcome {
        let t0 = MonotonicClock.now()
        let name = CheckpointDirectory.fileName(step: meta.step, phaseEnd: meta.phaseEnd)
        let path = directory.file(name)
        do {
            try meta.check(path: path)
            try snapshot.checkFinite(path: path)
            let header = snapshot.plan.header(metadata: CheckpointFormat.metadata(meta, facts), shuffled: facts.byteShuffle)
            let (size, sync) = try snapshot.write(to: path, header: header, shuffled: facts.byteShuffle)
            try directory.setLatest(name)
            let removed = try directory.applyRetention(keepLast: options.keepLast)
            return .saved(SavedCheckpoint(path: path, step: meta.step, phaseEnd: meta.phaseEnd,
                                          contentBytes: header.count + snapshot.plan.dataBytes, fileBytes: size,
                                          snapshotSeconds: snapshotSeconds, writeSeconds: MonotonicClock.now() - t0,
                                          syncSeconds: sync, cpuSeconds: threadCPUSeconds() - cpuBefore, removed: removed))
        } catch let e as FileError {
            return .failed(step: meta.step, error: e)
        } catch {
            return .failed(step: meta.step, error: FileError(path, "\(error)"))
        }
    }
}
