import Basics
import Control
import Foundation
import JobConfig
import Ring
import Tensors
import Trainer

/// How a worker runs.
public struct WorkerOptions: Sendable {
    /// The coordinator's control endpoint, tcp://HOST:PORT.
    public var coordinator: String
    /// Threads for OpenBLAS and the element-wise kernels.
    public var threads = 1
    /// Dataset directory (default: the config's data.path).
    public var data: String?
    /// A config of the worker's own, checked against the coordinator's (nil: take the coordinator's).
    public var config: JobConfig?
    /// Data-plane endpoint to bind (default: tcp://<address toward the coordinator>:*).
    public var bind: String?
    /// Seconds a collective may wait for a peer.
    public var ringTimeout = 30.0
    /// Give up after this long without word from the coordinator (it answers every heartbeat).
    public var silenceLimit = 60.0
    /// After telling the coordinator it is bound, report the generation failed if the other
    /// members have not all bound within this many seconds.
    public var fenceTimeout = 300.0
    /// Write progress lines to stderr.
    public var verbose = true
    /// All-reduce gradient buckets while backward still runs (off: one all-reduce after it).
    public var overlap = GradientOverlap.auto
    /// The control connection's security: the job's worker keys, or `--insecure`.
    public var security = ControlSecurity.insecure

    public init(coordinator: String) { self.coordinator = coordinator }
}

/// A worker process: registers with the coordinator, opens its data, then for each generation it
/// is assigned joins the ring and runs the leased steps of the curriculum (docs/design.md §3), reporting
/// asynchronously.
///
/// Two threads: the control thread (`ControlClient`) talks to the coordinator; the calling
/// thread computes (`WorkerSession`). Every decision — what to do next, when a generation is
/// superseded, when to checkpoint, report or upload, when the coordinator is lost — is the
/// `WorkerCore`'s; both threads feed it events through the `Mailbox` and carry out its directives.
public final class WorkerRuntime: Sendable {
    let options: WorkerOptions
    let mailbox: Mailbox

    public init(options: WorkerOptions) {
        self.options = options
        var settings = WorkerCore.Settings(coordinator: options.coordinator)
        settings.silenceLimit = options.silenceLimit
        settings.fenceTimeout = options.fenceTimeout
        let verbose = options.verbose
        mailbox = Mailbox(core: WorkerCore(settings: settings, now: MonotonicClock.now())) { line in
            if verbose { WorkerRuntime.write(line) }
        }
    }

    static func write(_ s: String) { fputs("proclip worker \(getpid()): \(s)\n", stderr) }

    public func log(_ s: String) { if options.verbose { WorkerRuntime.write(s) } }

    /// Asks the worker to leave (from a signal): it tells the coordinator and stops after the
    /// current step.
    public func requestStop(_ reason: String) { mailbox.handle { $0.onStopRequested(reason) } }

    /// Runs until the job ends, the worker is stopped or refused, or the coordinator is lost;
    /// returns the process exit status (0 done or stopped, 2 refused, 1 an error).
    public func run() -> Int32 {
        BLAS.useThreads(options.threads)
        if options.security.keys == nil { log(ControlSecurity.insecureWarning) }
        let session: WorkerSession, control: ControlClient
        do {
            session = try WorkerSession(options: options, mailbox: mailbox, log: log)
            control = try ControlClient(endpoint: options.coordinator, hello: session.hello, mailbox: mailbox, security: options.security)
        } catch {
            log("error: \(error)")
            return 1
        }
        control.start()
        defer { control.finish(within: 5) }
        defer { session.leaveRing() }
        while true {
            let task = mailbox.nextTask(slice: 1)
            do {
                if let code = try session.perform(task) { return code }
            } catch {
                log("error: \(error)")
                return 1
            }
        }
    }
}
