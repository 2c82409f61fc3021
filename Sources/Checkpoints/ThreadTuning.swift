#if canImport(Glibc)
import Glibc
#endif

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
