import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM delivered to a handler on a thread of their own: the signals are blocked
/// first (so one sent right at start is kept, not lost), then a thread waits for them with
/// `sigwait`. Children started with `posix_spawn` get a clean mask (see Spawn).
enum Signals {
    /// Blocks SIGINT/SIGTERM in this thread (and the threads it starts from now on) and calls
    /// `handler(signal)` for each one that arrives.
    static func handle(_ handler: @escaping @Sendable (Int32) -> Void) {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let waiter = Thread {
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGINT)
            sigaddset(&set, SIGTERM)
            while true {
                var sig: Int32 = 0
                if sigwait(&set, &sig) == 0 { handler(sig) }
            }
        }
        waiter.name = "proclip-signals"
        waiter.start()
    }
}
