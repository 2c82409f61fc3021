import Spawn
#if canImport(Glibc)
import Glibc
#endif

/// How a process run to completion ended, and everything it wrote.
public struct Finished: Sendable {
    /// Its exit code, or the signal that ended it.
    public let status: ExitStatus
    /// Its standard output, every byte.
    public let stdout: String
    /// Its standard error, every byte.
    public let stderr: String
}

/// Starts `executable` (a path, or a program name looked up on PATH) with `arguments` in
/// `directory`, `environment` added to this process's, its standard input closed; read its output
/// with `readLine`, end it with `send`. A `Spawn.ChildProcess`: signals unblocked in the child, so
/// SIGTERM and SIGINT reach it.
public func startProcess(_ executable: String, _ arguments: [String], directory: String? = repositoryRoot,
                         environment: [String: String] = [:]) throws -> ChildProcess {
    let child = try ChildProcess(executable: env, arguments: try envArguments(executable, arguments, directory, environment))
    child.closeInput()
    return child
}

/// Runs `executable` (a path, or a program name looked up on PATH) with `arguments` in
/// `directory`, `environment` added to this process's, to its end and captures its output. Kills
/// it and throws `SpawnError.timedOut` when it has not ended within `timeout` seconds.
public func runProcess(_ executable: String, _ arguments: [String], timeout: Double = 300,
                       directory: String? = repositoryRoot, environment: [String: String] = [:]) throws -> Finished {
    let child = try startProcess(executable, arguments, directory: directory, environment: environment)
    let deadline = monotonicSeconds() + timeout
    do {
        let stdout = try child.readToEnd(timeout: timeout)
        guard let status = try child.wait(timeout: max(deadline - monotonicSeconds(), 1)) else {
            throw SpawnError.timedOut("an exit")
        }
        return Finished(status: status, stdout: stdout, stderr: child.standardError())
    } catch SpawnError.timedOut(_) {
        child.send(signal: SIGKILL)
        throw SpawnError.timedOut("`\(([executable] + arguments).joined(separator: " "))` to end within \(timeout) s")
    }
}

/// Starts a long-running `executable` (a path, or a program name looked up on PATH) in
/// `directory`, its standard output and error appended to `log`, in a process group of its own.
public func startLoggedProcess(_ executable: String, _ arguments: [String], log: String,
                               directory: String? = repositoryRoot) throws -> LoggedProcess {
    try LoggedProcess(executable: env, arguments: try envArguments(executable, arguments, directory, [:]), log: log)
}

extension LoggedProcess {
    /// SIGKILLs the process and every process below it, unless it has ended: a test's clean-up
    /// for a job whose children would outlive their launcher.
    public func killTree() {
        if poll() == nil { killProcessTree(pid) }
    }
}

/// The processes whose parent is `pid`, from /proc.
public func childProcessIDs(of pid: pid_t) -> [pid_t] {
    guard let proc = opendir("/proc") else { return [] }
    defer { closedir(proc) }
    var children: [pid_t] = []
    while let entry = readdir(proc) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let child = pid_t(name), let stat = readSmallFile("/proc/\(name)/stat") else { continue }
        // "pid (comm) state ppid …": comm may hold spaces and parentheses; read after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, pid_t(fields[1]) == pid { children.append(child) }
    }
    return children
}

/// Sends SIGKILL to `pid` and to every process below it, all found before any is killed (an
/// orphan's parent changes).
public func killProcessTree(_ pid: pid_t) {
    var tree = [pid]
    var next = 0
    while next < tree.count {
        tree += childProcessIDs(of: tree[next])
        next += 1
    }
    for p in tree { kill(p, SIGKILL) }
}

/// The starter of every child: `posix_spawn_file_actions_addchdir_np` is not visible from Swift's
/// Glibc module, so `env -C` changes the directory, sets the variables, then execs the program
/// (searching PATH for a bare name) in the same process.
private let env = "/usr/bin/env"

private func envArguments(_ executable: String, _ arguments: [String], _ directory: String?,
                          _ environment: [String: String]) throws -> [String] {
    if executable.contains("/") && access(executable, X_OK) != 0 { throw SpawnError.system(executable, errno) }
    precondition(!executable.contains("="), "env would take \(executable) for a variable")
    let variables = environment.keys.sorted().map { "\($0)=\(environment[$0]!)" }
    return (directory.map { ["-C", $0] } ?? []) + variables + [executable] + arguments
}

/// The command line of process `pid` (its arguments joined by spaces), from /proc; nil once it
/// has gone.
public func commandLine(of pid: pid_t) -> String? {
    readSmallFile("/proc/\(pid)/cmdline").map { $0.split(separator: "\0").joined(separator: " ") }
}

/// A file of unknown size (a /proc file reports 0 bytes), up to 64 KiB.
private func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 65536)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        done += n
    }
    return String(decoding: bytes[..<done], as: UTF8.self)
}
