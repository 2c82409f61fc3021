#if canImport(Glibc)
import Glibc
#endif

/// Splits element-wise work across a few threads of one persistent pool.
///
/// One process-wide setting, `threads`, chosen once at start-up (it follows the worker's
/// `--threads`); with several worker processes on one host it is 1, like OpenBLAS's. The pool's
/// threads sleep on a condition variable between jobs; handing out a job allocates nothing.
///
/// Work is cut into fixed-size blocks whatever the thread count, so a reduction computed block by
/// block (each block in a fixed order, then the blocks in index order) gives bit-identical results
/// with any number of threads — workers on different hosts must agree to the last bit.
///
/// One caller at a time: `forBlocks`, `forChunks` and `run` hand the whole pool to their caller
/// and return when every part is done, so two threads must not call them at the same time, nor a
/// part call them again (both trap, see `ThreadPool.run`). In a worker that is the compute thread;
/// the checkpoint writer's thread copies without the pool.
public enum Parallel {
    /// `nonisolated(unsafe)`: replaced only by setting `threads`, at start-up before any parallel
    /// work (`BLAS.useThreads`); only read afterwards.
    nonisolated(unsafe) static var pool: ThreadPool?

    /// Threads used by `forBlocks` and `forChunks` (the caller's thread included).
    public static var threads: Int {
        get { pool?.size ?? 1 }
        set {
            let n = max(1, newValue)
            if n == threads { return }
            pool = n > 1 ? ThreadPool(size: n) : nil
        }
    }

    /// Runs `job` over the blocks `[b·size, min((b+1)·size, count))` of `0..<count`, spread over
    /// the threads (each takes a contiguous run of blocks).
    @inlinable
    public static func forBlocks<J: BlockJob>(_ count: Int, size: Int = 1 << 16, _ job: J) {
        if count <= 0 { return }
        let blocks = (count + size - 1) / size
        let t = min(threads, blocks)
        if t <= 1 {
            for b in 0..<blocks { job.run(block: b, b * size, min((b + 1) * size, count)) }
            return
        }
        run(parts: t, Blocks(job: job, count: count, size: size, blocks: blocks, parts: t))
    }

    /// Runs `job` on disjoint ranges covering `0..<count`, aligned to `align` elements, in parallel
    /// when there are at least `minPerThread` elements per thread.
    @inlinable
    public static func forChunks<J: ChunkJob>(_ count: Int, minPerThread: Int = 1 << 15, align: Int = 16, _ job: J) {
        let t = min(threads, count / max(minPerThread, 1))
        if t <= 1 {
            if count > 0 { job.run(0, count) }
            return
        }
        var per = (count + t - 1) / t
        per = (per + align - 1) / align * align
        run(parts: t, Chunks(job: job, count: count, per: per))
    }

    /// Runs `job.run(part:)` for parts 0..<n on n threads (the caller runs part 0) and waits.
    /// Allocation-free: the job stays on the caller's stack and the pool gets a pointer to it.
    @inlinable
    public static func run<J: PartJob>(parts n: Int, _ job: J) {
        guard let pool = currentPool, n > 1 else {
            for i in 0..<n { job.run(part: i) }
            return
        }
        withUnsafePointer(to: job) { p in
            pool.run(UnsafeRawPointer(p), parts: n) { ctx, part in ctx.assumingMemoryBound(to: J.self).pointee.run(part: part) }
        }
    }

    @usableFromInline static var currentPool: ThreadPool? { pool }

    @usableFromInline
    struct Blocks<J: BlockJob>: PartJob {
        @usableFromInline let job: J
        @usableFromInline let count, size, blocks, parts: Int
        @inlinable init(job: J, count: Int, size: Int, blocks: Int, parts: Int) {
            self.job = job
            self.count = count
            self.size = size
            self.blocks = blocks
            self.parts = parts
        }
        @inlinable func run(part i: Int) {
            for b in (i * blocks / parts)..<((i + 1) * blocks / parts) {
                job.run(block: b, b * size, min((b + 1) * size, count))
            }
        }
    }

    @usableFromInline
    struct Chunks<J: ChunkJob>: PartJob {
        @usableFromInline let job: J
        @usableFromInline let count, per: Int
        @inlinable init(job: J, count: Int, per: Int) {
            self.job = job
            self.count = count
            self.per = per
        }
        @inlinable func run(part i: Int) {
            let lo = min(i * per, count)
            let hi = min(lo + per, count)
            if lo < hi { job.run(lo, hi) }
        }
    }
}

/// Work on one numbered part of a job split into parts.
public protocol PartJob {
    func run(part: Int)
}

/// Work on a range `lo..<hi` of elements.
public protocol ChunkJob {
    func run(_ lo: Int, _ hi: Int)
}

/// Work on block `block`, covering elements `lo..<hi`.
public protocol BlockJob {
    func run(block: Int, _ lo: Int, _ hi: Int)
}

/// A fixed set of threads that run one job at a time: a context pointer (to a job on the
/// caller's stack, valid for the duration of `run`) and a function that captures nothing.
///
/// `@unchecked Sendable`: every mutable field is read and written holding `lock`; the job's
/// context outlives the job because `run` returns only when every part has finished.
@usableFromInline
final class ThreadPool: @unchecked Sendable {
    let size: Int
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var job: UnsafeRawPointer?
    private var invoke: ((UnsafeRawPointer, Int) -> Void)?
    private var parts = 0
    private var generation = 0
    private var pending = 0

    init(size: Int) {
        self.size = size
        pthread_mutex_init(lock, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
        for worker in 1..<size {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: worker)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.loop(ctx.index)
                return nil
            }, context)
            precondition(rc == 0, "cannot start a worker thread (error \(rc))")
            pthread_detach(thread)
        }
    }

    /// Threads live as long as the process (the pool is process-wide).
    private final class WorkerContext {
        let pool: ThreadPool
        let index: Int
        init(pool: ThreadPool, index: Int) {
            self.pool = pool
            self.index = index
        }
    }

    /// Runs `invoke(context, part)` for every part; `invoke` captures nothing. For one caller at a
    /// time: a second caller (another thread, or a part of the running job) would overwrite the
    /// job of the first, so it traps instead (a check under the lock `run` takes anyway).
    @usableFromInline
    func run(_ context: UnsafeRawPointer, parts n: Int, _ invoke: @escaping (UnsafeRawPointer, Int) -> Void) {
        pthread_mutex_lock(lock)
        precondition(job == nil, "Parallel: called from two threads at once, or from inside a parallel job")
        job = context
        self.invoke = invoke
        parts = n
        pending = n - 1
        generation &+= 1
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(lock)
        invoke(context, 0)
        pthread_mutex_lock(lock)
        while pending > 0 { pthread_cond_wait(done, lock) }
        job = nil
        self.invoke = nil
        pthread_mutex_unlock(lock)
    }

    private func loop(_ index: Int) {
        var seen = 0
        while true {
            pthread_mutex_lock(lock)
            while generation == seen { pthread_cond_wait(wake, lock) }
            seen = generation
            let context = job
            let call = invoke
            let n = parts
            pthread_mutex_unlock(lock)
            guard index < n, let context, let call else { continue }
            call(context, index)
            pthread_mutex_lock(lock)
            pending -= 1
            if pending == 0 { pthread_cond_signal(done) }
            pthread_mutex_unlock(lock)
        }
    }
}
