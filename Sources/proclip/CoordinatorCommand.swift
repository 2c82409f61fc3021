import ArgumentParser
import Basics
import Control
import Coordinator
import JobConfig
import Tensors

/// `proclip coordinator`: the daemon that runs a job across workers.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run a job's coordinator: membership, data assignment, phases, leases, evaluation, status.",
        discussion: """
            Workers (`proclip worker --coordinator ADDR`) register here, receive the config, their rank and \
            their steps; they train peer to peer over a ring and report asynchronously. The coordinator moves \
            the job through the phase plan, evaluates at every phase end and writes the run directory as \
            `proclip train` does. SIGTERM or SIGINT stops the job and every worker.
            """)

    @Option(help: "Job config (YAML).") var config: String
    @Option(help: "Control endpoint to listen on.") var listen: String = "tcp://0.0.0.0:29500"
    @Option(help: "Workers to wait for before starting.") var workers: Int = 1
    @Option(help: "Fewest workers to start (or go on) with, after a grace period (default: --workers).") var minWorkers: Int?
    @Option(help: "Run directory (default: runs/<config name>).") var runDir: String?
    @Option(help: "Dataset directory (default: the config's data.path).") var data: String?
    @Option(help: "Stop after N global steps.") var maxSteps: Int?
    @Option(help: "Seconds without a heartbeat before a worker is declared dead.") var heartbeatTimeout: Double = 10
    @Option(help: "Evaluate on at most this many eval samples.") var evalSamples: Int?
    @Option(help: "Threads for evaluation.") var threads: Int = 1
    @Option(help: "Checkpoint every N steps (0: only at phase ends and by time).") var checkpointEvery: Int = 100
    @Option(help: "Also checkpoint at least every M minutes (0: never by time).") var checkpointMinutes: Double = 30
    @Option(help: "Checkpoints kept besides every phase end.") var keepCheckpoints: Int = 3
    @Option(help: "Checkpoint directory, on storage rank 0's host can write (default: <run dir>/checkpoints).") var checkpointDir: String?
    @Flag(help: "Write no checkpoints.") var noCheckpoints = false
    @Option(help: "Stop the job (status 1) after this many checkpoints in a row could not be written, keeping the last good one (0: never).")
    var maxCheckpointFailures: Int = 2
    @Option(help: "Resume from a checkpoint: auto (the newest that verifies; a fresh start when there is none) or a path.")
    var resume: String?
    @Flag(help: "Resume even when the checkpoint was trained with another config.") var allowConfigChange = false
    @Flag(help: "Reuse a run directory that already holds a run.") var overwrite = false
    @Flag(help: "Only errors on stderr.") var quiet = false
    @OptionGroup(title: "Security (default: the keys in RUN_DIR/keys, created there when missing)") var security: SecurityOptions

    func validate() throws {
        if workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let m = minWorkers, m < 1 || m > workers { throw ValidationError("--min-workers must be in 1...--workers") }
        if let m = maxSteps, m < 1 { throw ValidationError("--max-steps must be at least 1") }
        if checkpointEvery < 0 || keepCheckpoints < 1 { throw ValidationError("--checkpoint-every must be ≥ 0 and --keep-checkpoints ≥ 1") }
        if maxCheckpointFailures < 0 { throw ValidationError("--max-checkpoint-failures must be ≥ 0") }
    }

    func run() throws {
        let target = SignalTarget()
        Signals.handle { target.deliver($0) }
        BLAS.useThreads(threads)
        let job = try JobConfig.load(path: config)
        var options = CoordinatorOptions(config: job, listen: listen, minWorkers: minWorkers ?? workers, workers: workers,
                                         runDir: runDir ?? "runs/\(job.name)")
        options.overwrite = overwrite
        options.data = data
        options.maxSteps = maxSteps
        options.heartbeatTimeout = heartbeatTimeout
        options.evalSamples = evalSamples
        options.checkpointEvery = checkpointEvery
        options.checkpointMinutes = checkpointMinutes
        options.keepCheckpoints = keepCheckpoints
        options.checkpointDir = checkpointDir
        options.noCheckpoints = noCheckpoints
        options.maxCheckpointFailures = maxCheckpointFailures
        options.resume = resume
        options.allowConfigChange = allowConfigChange
        options.verbose = !quiet
        options.security = try security.resolve(.coordinator) {
            let dir = options.runDir + "/keys"
            let (keys, created) = try JobKeys.loadOrCreate(in: dir, role: .coordinator)
            if created && !quiet { printError("proclip coordinator: keys written to \(dir)/: give worker.key to the workers (--keys), status.key to those who watch") }
            return .curve(keys)
        }
        let server = try CoordinatorServer(options: options)
        let stop = server.stopRequest
        target.set { _ in stop.raise() }
        throw ExitCode(server.serve())
    }
}
