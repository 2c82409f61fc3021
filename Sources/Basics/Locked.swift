#if canImport(Glibc)
import Glibc
#endif

/// A value that can be read or changed only while its lock is held: the one lock type for state
/// that threads share. The same shape as `Synchronization.Mutex` (`withLock` lends the value
/// `inout`; nothing else reaches it), but over a pthread mutex: on Linux `Mutex` waits on a
/// futex that ThreadSanitizer does not see, so TSan reports races between accesses that the
/// lock orders (two threads incrementing a `Mutex<[Int]>` under `withLock` are reported), which
/// would bury real reports. A pthread mutex costs the same uncontended and TSan understands it.
public final class Locked<Value>: @unchecked Sendable {  // `value` is touched only inside `withLock`, holding `mutex`
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    /// A lock around `value`.
    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock; `body` must not call `withLock` on the same
    /// lock (it is not recursive).
    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
