import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM delivered to a handler on a thread of their own. A process-wide
/// `sigaction` handler (which runs on whichever thread the kernel picks — OpenBLAS starts its
/// threads before `main`, so blocking the signals in one thread is not enough) writes the signal
/// number to a pipe; a dedicated thread reads it and calls the handler outside signal context.
enum Signals {
    nonisolated(unsafe) static var writeFD: Int32 = -1

    /// Installs the handler for SIGINT and SIGTERM and calls `handler(signal)` for each one.
    static func handle(_ handler: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        writeFD = fds[1]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(Signals.writeFD, &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        let readFD = fds[0]
        let waiter = Thread {
            while true {
                var byte: UInt8 = 0
                let n = read(readFD, &byte, 1)
                if n == 1 { handler(Int32(byte)) } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
        waiter.name = "proclip-signals"
        waiter.start()
    }
}

/// Where a signal goes once the object that handles it exists (signals are blocked before it is).
final class SignalTarget: @unchecked Sendable {
    private let lock = NSLock()
    private var action: ((Int32) -> Void)?
    private var pending: [Int32] = []

    /// Sets the action; signals that came earlier are delivered now.
    func set(_ action: @escaping (Int32) -> Void) {
        lock.lock()
        self.action = action
        let early = pending
        pending = []
        lock.unlock()
        for s in early { action(s) }
    }

    func deliver(_ sig: Int32) {
        lock.lock()
        if let action {
            lock.unlock()
            action(sig)
        } else {
            pending.append(sig)
            lock.unlock()
        }
    }
}
