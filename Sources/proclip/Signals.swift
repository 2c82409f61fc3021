import Basics
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM delivered to a handler on a thread of their own. A process-wide
/// `sigaction` handler (which runs on whichever thread the kernel picks — OpenBLAS starts its
/// threads before `main`, so blocking the signals in one thread is not enough) writes the signal
/// number to a pipe; a dedicated thread reads it and calls the handler outside signal context.
enum Signals {
    /// The pipe's write end: stored before the handler is installed, read by the handler (an
    /// atomic load is async-signal-safe).
    static let writeFD = Atomic<Int32>(-1)

    /// Installs the handler for SIGINT and SIGTERM and calls `handler(signal)` for each one.
    static func handle(_ handler: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        writeFD.store(fds[1], ordering: .releasing)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(Signals.writeFD.load(ordering: .acquiring), &byte, 1)
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
/// The action runs on the signal thread, so it must be Sendable.
final class SignalTarget: Sendable {
    private struct State {
        var action: (@Sendable (Int32) -> Void)?
        var pending: [Int32] = []
    }
    private let state = Locked(State())

    /// Sets the action; signals that came earlier are delivered now.
    func set(_ action: @escaping @Sendable (Int32) -> Void) {
        let early = state.withLock { s in
            s.action = action
            defer { s.pending = [] }
            return s.pending
        }
        for sig in early { action(sig) }
    }

    /// Runs the action for `sig`, or keeps `sig` for the action set later.
    func deliver(_ sig: Int32) {
        let action = state.withLock { s in
            if s.action == nil { s.pending.append(sig) }
            return s.action
        }
        action?(sig)
    }
}

/// A flag a signal raises and the main loop reads.
final class SignalFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    func raise() { raised.store(true, ordering: .releasing) }

    var isRaised: Bool { raised.load(ordering: .acquiring) }
}
