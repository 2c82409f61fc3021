import ArgumentParser
import JobConfig
import Trainer
import Worker

/// `proclip worker`: one training process of a job.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Join a job: register with the coordinator, train its rows of every step over the ring.",
        discussion: """
            The worker receives the config from the coordinator, maps the dataset (the config's data.path or \
            --data: shared storage or its own copy; the coordinator checks the manifests match) and binds a \
            data-plane endpoint on the address it uses to reach the coordinator. Exit status: 0 when the job \
            ended or the worker was told to stop, 2 when refused, 1 on an error.
            """)

    @Option(help: "The coordinator's control endpoint.") var coordinator: String = "tcp://127.0.0.1:29500"
    @Option(help: "Threads for OpenBLAS and the element-wise kernels.") var threads: Int = 1
    @Option(help: "Dataset directory (default: the config's data.path).") var data: String?
    @Option(help: "A config of this worker's own, refused if it differs from the coordinator's.") var config: String?
    @Option(help: "Data-plane endpoint to bind (default: tcp://<address toward the coordinator>:*). An ipc://PATH endpoint serves a predecessor on this host: its payloads then arrive through shared memory.") var bind: String?
    @Option(help: "Seconds a collective waits for a peer before the step fails.") var ringTimeout: Double = 30
    @Option(help: "Seconds without word from the coordinator (it answers every heartbeat) before the worker gives up with status 1.")
    var coordinatorTimeout: Double = 60
    @Option(help: "Seconds to wait, once bound for a new generation, for every other member to bind; then the generation is reported failed.")
    var fenceTimeout: Double = 300
    @Option(help: "All-reduce gradient buckets during backward: auto (when the gradients fill two 4 MiB buckets), on, off (one all-reduce after backward).")
    var overlap: GradientOverlap = .auto
    @Flag(help: "Only errors on stderr.") var quiet = false
    @OptionGroup(title: "Security") var security: SecurityOptions

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        for (name, value) in [("--ring-timeout", ringTimeout), ("--coordinator-timeout", coordinatorTimeout), ("--fence-timeout", fenceTimeout)]
        where !(value > 0 && value.isFinite) {
            throw ValidationError("\(name) must be a positive number of seconds")
        }
        if !coordinator.hasPrefix("tcp://") && !coordinator.hasPrefix("ipc://") {
            throw ValidationError("--coordinator must be tcp://HOST:PORT or ipc://PATH")
        }
    }

    func run() throws {
        let target = SignalTarget()
        Signals.handle { target.deliver($0) }
        var options = WorkerOptions(coordinator: coordinator)
        options.threads = threads
        options.data = data
        options.config = try config.map { try JobConfig.load(path: $0) }
        options.bind = bind
        options.ringTimeout = ringTimeout
        options.silenceLimit = coordinatorTimeout
        options.fenceTimeout = fenceTimeout
        options.verbose = !quiet
        options.overlap = overlap
        options.security = try security.resolve(.worker)
        let worker = WorkerRuntime(options: options)
        target.set { sig in worker.requestStop("signal \(sig)") }
        throw ExitCode(worker.run())
    }
}

extension GradientOverlap: ExpressibleByArgument {}
