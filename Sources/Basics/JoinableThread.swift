#if canImport(Glibc)
import Glibc
#endif

/// A joinable thread running `body`.
public final class JoinableThread {
    private var thread = pthread_t()
    private var joined = false

    /// Starts `name`'s thread (the name appears only if it cannot start).
    public init(_ name: String, _ body: @escaping () -> Void) {
        final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(rc == 0, "cannot start the \(name) thread (error \(rc))")
    }

    /// Waits for the thread to end (once). Called on the thread itself (when it drops the last
    /// reference to its owner), it detaches instead.
    public func join() {
        if joined { return }
        if pthread_equal(thread, pthread_self()) != 0 { pthread_detach(thread) } else { pthread_join(thread, nil) }
        joined = true
    }

    deinit { join() }
}
