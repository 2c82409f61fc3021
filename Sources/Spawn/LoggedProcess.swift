#if canImport(Glibc)
import Glibc
#endif

/// A long-running local child whose standard output and error go to a log file: started with
/// `posix_spawn` with signals unblocked and at their defaults, standard input from /dev/null, in
/// its own process group (so a terminal's Ctrl-C reaches the parent alone, which then shuts the
/// children down in order).
public final class LoggedProcess {
    public let pid: pid_t
    public let log: String
    private var status: ExitStatus?

    /// Starts `executable` with `arguments`, appending its output to `log`.
    public init(executable: String, arguments: [String], log: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var pid: pid_t = 0
        let rc = spawn(&pid, executable, arguments, &actions, newProcessGroup: true)
        guard rc == 0 else { throw SpawnError.system("posix_spawn \(executable)", rc) }
        self.pid = pid
        self.log = log
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
    }

    /// Sends `signal` if the child has not ended.
    public func send(signal: Int32) { if status == nil { kill(pid, signal) } }

    /// How it ended, if it has (never blocks).
    public func poll() -> ExitStatus? {
        if let status { return status }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = (raw & 0x7f) == 0 ? .exited((raw >> 8) & 0xff) : .signaled(raw & 0x7f)
        }
        return status
    }

    /// Waits up to `timeout` seconds for the child to end; nil if it still runs.
    public func wait(timeout: Double) -> ExitStatus? {
        let deadline = monotonicSeconds() + timeout
        while true {
            if let s = poll() { return s }
            if monotonicSeconds() >= deadline { return nil }
            usleep(5000)
        }
    }
}
