#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    /// It called `exit` with this code.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): return "exited with \(code)"
        case .signaled(let sig): return "killed by signal \(sig)"
        }
    }
}

/// A local child process started with `posix_spawn`, with every signal unblocked and at its
/// default disposition (a child inherits a blocked mask otherwise, and then ignores SIGTERM),
/// and pipes to its standard input, output and error.
///
/// Waits are bounded and block the calling thread: use it from a thread, not a Swift task.
public final class ChildProcess {
    /// The process id.
    public let pid: pid_t
    private var stdinFD: Int32
    private let stdoutFD: Int32
    private let stderrFD: Int32
    private var stdoutBuffer: [UInt8] = []
    private var stderrText: [UInt8] = []
    private var stderrOpen = true
    private var status: ExitStatus?

    /// Starts `executable` with `arguments` (not including argv[0]).
    public init(executable: String, arguments: [String]) throws {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw SpawnError.system("pipe", errno) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in inPipe + outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }

        var pid: pid_t = 0
        let rc = spawn(&pid, executable, arguments, &actions, newProcessGroup: false)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw SpawnError.system("posix_spawn \(executable)", rc)
        }
        self.pid = pid
        stdinFD = inPipe[1]
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
        signal(SIGPIPE, SIG_IGN)  // a child that died must not take the parent with it
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = try? wait(timeout: 5)
        }
        if stdinFD >= 0 { close(stdinFD) }
        close(stdoutFD)
        close(stderrFD)
    }

    /// Writes `line` and a newline to the child's standard input.
    public func writeLine(_ line: String) throws {
        let bytes = Array((line + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw SpawnError.system("write to child \(pid)", errno) }
            done += n
        }
    }

    /// Closes the child's standard input.
    public func closeInput() {
        if stdinFD >= 0 { close(stdinFD) }
        stdinFD = -1
    }

    /// The next line of the child's standard output (without its newline); nil at end of output.
    /// Throws `SpawnError.timedOut` after `timeout` seconds.
    public func readLine(timeout: Double) throws -> String? {
        let deadline = monotonicSeconds() + timeout
        while true {
            if let nl = stdoutBuffer.firstIndex(of: 10) {
                let line = String(decoding: stdoutBuffer[..<nl], as: UTF8.self)
                stdoutBuffer.removeSubrange(...nl)
                return line
            }
            if try !readMore(until: deadline, waitingFor: "a line from child \(pid)") {
                if stdoutBuffer.isEmpty { return nil }
                let line = String(decoding: stdoutBuffer, as: UTF8.self)
                stdoutBuffer.removeAll()
                return line
            }
        }
    }

    /// The rest of the child's standard output, up to its end, newlines included (what `readLine`
    /// has not returned). Throws `SpawnError.timedOut` after `timeout` seconds.
    public func readToEnd(timeout: Double) throws -> String {
        let deadline = monotonicSeconds() + timeout
        while try readMore(until: deadline, waitingFor: "the end of output from child \(pid)") {}
        let text = String(decoding: stdoutBuffer, as: UTF8.self)
        stdoutBuffer.removeAll()
        return text
    }

    /// Waits for more standard output (true) or its end (false), draining standard error meanwhile.
    private func readMore(until deadline: Double, waitingFor what: @autoclosure () -> String) throws -> Bool {
        while true {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { throw SpawnError.timedOut(what()) }
            var fds = [pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stderrOpen ? stderrFD : -1, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, Int32(min(remaining * 1000 + 1, 1000)))
            if rc < 0 { if errno == EINTR { continue }; throw SpawnError.system("poll", errno) }
            if fds[1].revents != 0, drain(stderrFD, into: &stderrText) == 0 { stderrOpen = false }
            if fds[0].revents != 0 { return drain(stdoutFD, into: &stdoutBuffer) > 0 }
        }
    }

    /// Everything the child wrote to standard error so far (read on demand).
    public func standardError() -> String {
        var fds = [pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)]
        while stderrOpen, poll(&fds, 1, 0) > 0, fds[0].revents != 0 {
            if drain(stderrFD, into: &stderrText) == 0 { stderrOpen = false }
        }
        return String(decoding: stderrText, as: UTF8.self)
    }

    @discardableResult
    private func drain(_ fd: Int32, into buffer: inout [UInt8]) -> Int {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 { buffer.append(contentsOf: chunk[..<n]) }
        return max(n, 0)
    }

    /// Sends `signal` to the child.
    public func send(signal: Int32) { if status == nil { kill(pid, signal) } }

    /// Waits up to `timeout` seconds for the child to end; nil if it is still running.
    public func wait(timeout: Double) throws -> ExitStatus? {
        if let status { return status }
        let deadline = monotonicSeconds() + timeout
        while true {
            var raw: Int32 = 0
            let rc = waitpid(pid, &raw, WNOHANG)
            if rc == pid {
                let s: ExitStatus = (raw & 0x7f) == 0 ? .exited((raw >> 8) & 0xff) : .signaled(raw & 0x7f)
                status = s
                return s
            }
            if rc < 0 && errno != EINTR { throw SpawnError.system("waitpid \(pid)", errno) }
            if monotonicSeconds() >= deadline { return nil }
            _ = standardError()  // keep the pipe from filling while we wait
            usleep(2000)
        }
    }
}

/// A failure to start or talk to a child process.
public enum SpawnError: Error, CustomStringConvertible {
    case system(String, Int32)
    case timedOut(String)

    public var description: String {
        switch self {
        case .system(let call, let code): return "\(call): \(String(cString: strerror(code)))"
        case .timedOut(let what): return "timed out waiting for \(what)"
        }
    }
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// `posix_spawn` with every signal unblocked and at its default disposition in the child (a child
/// inherits a blocked mask otherwise, and then ignores SIGTERM), optionally in a process group of
/// its own. Returns posix_spawn's status.
func spawn(_ pid: inout pid_t, _ executable: String, _ arguments: [String], _ actions: inout posix_spawn_file_actions_t,
           newProcessGroup: Bool) -> Int32 {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var noSignals = sigset_t(), allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attr, &noSignals)
    posix_spawnattr_setsigdefault(&attr, &allSignals)
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if newProcessGroup {
        posix_spawnattr_setpgroup(&attr, 0)
        flags |= POSIX_SPAWN_SETPGROUP
    }
    posix_spawnattr_setflags(&attr, Int16(flags))
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    return posix_spawn(&pid, executable, &actions, &attr, argv, environ)
}
