#if canImport(Glibc)
import Glibc
#endif

/// A mutex with one condition variable on the monotonic clock: the blocking primitive shared by
/// the in-memory ring transport, the bucket reducer, the checkpoint writer and the worker's
/// mailbox. Waits are made holding the lock (inside `withLock`).
///
/// `@unchecked Sendable`: it is the lock itself; the pthread objects are allocated once in `init`
/// and only used through pthread calls, which are thread-safe.
public final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` holding the lock.
    @inline(__always) public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// With the lock held: waits for a `broadcast` or until the monotonic clock reads
    /// `nanoseconds`; false once that time has passed.
    public func wait(untilMonotonicNanoseconds nanoseconds: UInt64) -> Bool {
        if Monitor.now() >= nanoseconds { return false }
        var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = pthread_cond_timedwait(condition, mutex, &ts)
        return Monitor.now() < nanoseconds
    }

    /// With the lock held: waits for a `broadcast` or until `deadline`; false once it passed.
    public func wait(until deadline: Deadline) -> Bool { wait(untilMonotonicNanoseconds: deadline.nanoseconds) }

    /// With the lock held: waits (without a time limit) until `ready()` holds.
    public func wait(until ready: () -> Bool) {
        while !ready() { pthread_cond_wait(condition, mutex) }
    }

    /// Wakes every waiter.
    @inline(__always) public func broadcast() { pthread_cond_broadcast(condition) }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
