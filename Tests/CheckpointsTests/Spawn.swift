import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, its signal mask and dispositions reset (a test
/// runner may block signals, and children inherit the mask), stdout and stderr on pipes.
final class Child {
    let pid: pid_t
    private let outFD: Int32
    private let errFD: Int32
    private var outBuffer: [UInt8] = []

    init(_ argv: [String]) throws {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw SpawnError(argv[0], "pipe failed: errno \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var child = pid_t()
        let rc = posix_spawn(&child, argv[0], &actions, &attr, &cargs, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(argv[0], "posix_spawn failed: errno \(rc)")
        }
        pid = child
        outFD = outPipe[0]
        errFD = errPipe[0]
    }

    deinit {
        close(outFD)
        close(errFD)
    }

    /// The next line of stdout, or nil at end of output or after `timeout` seconds.
    func readLine(timeout: Double) -> String? {
        let deadline = now() + timeout
        while true {
            if let nl = outBuffer.firstIndex(of: 10) {
                let line = String(decoding: outBuffer[..<nl], as: UTF8.self)
                outBuffer.removeSubrange(...nl)
                return line
            }
            let left = deadline - now()
            if left <= 0 { return nil }
            var p = pollfd(fd: outFD, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, Int32(min(left, 1) * 1000)) <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(outFD, &chunk, chunk.count)
            if n <= 0 { return nil }
            outBuffer += chunk[..<n]
        }
    }

    /// Sends `signal`.
    func kill(_ signal: Int32) { _ = Glibc.kill(pid, signal) }

    /// Waits for the child (reading the rest of its output) and returns how it ended: the exit
    /// status, or 128 + the signal that killed it.
    func wait() -> Finished {
        var rest = outBuffer
        var err: [UInt8] = []
        for (fd, isOut) in [(outFD, true), (errFD, false)] {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { break }
                if isOut { rest += chunk[..<n] } else { err += chunk[..<n] }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Finished(status: code, stdout: String(decoding: rest, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}

struct SpawnError: Error, CustomStringConvertible {
    let program: String, problem: String
    init(_ program: String, _ problem: String) { self.program = program; self.problem = problem }
    var description: String { "\(program): \(problem)" }
}

/// Runs a command to completion and returns its outcome.
@discardableResult
func runCommand(_ argv: [String]) throws -> Finished {
    try Child(argv).wait()
}

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
