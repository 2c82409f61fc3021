#if canImport(Glibc)
import Glibc
#endif

/// A joinable thread running `body`.
final class JoinableThread {
    private var thread = pthread_t()
    private var joined = false

    init(_ body: @escaping () -> Void) {
        final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(rc == 0, "cannot start the checkpoint writer thread (error \(rc))")
    }

    /// Waits for the thread to end (once). Called on the thread itself (when it drops the last
    /// reference to its owner), it detaches instead.
    func join() {
        if joined { return }
        if pthread_equal(thread, pthread_self()) != 0 { pthread_detach(thread) } else { pthread_join(thread, nil) }
        joined = true
    }

    deinit { join() }
}

/// Lowers the calling thread's scheduling priority by `nice`. Linux keeps a nice value per
/// thread, and `PRIO_PROCESS` with id 0 addresses the calling thread only.
func lowerThreadPriority(_ nice: Int32) {
    guard nice > 0 else { return }
    let which = __priority_which_t(PRIO_PROCESS.rawValue)
    errno = 0
    let current = getpriority(which, 0)
    if errno == 0 { _ = setpriority(which, 0, min(current + nice, 19)) }
}

/// CPU time (user and system) the calling thread has used, in seconds.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
