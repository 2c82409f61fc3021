/// The control plane's messages (docs/design.md §5): workers talk to the coordinator (DEALER → ROUTER),
/// `proclip status` asks it questions. Each travels as one Wire frame whose header names the
/// type, generation and step, with a JSON payload; every field is checked on arrival and a
/// malformed message is dropped and counted, never fatal.

/// What a worker says about itself when it registers.
public struct WorkerHello: Codable, Sendable, Equatable {
    public var version: String
    public var host: String
    public var pid: Int32
    public var threads: Int
    /// The ring endpoint this worker bound (its data plane), e.g. tcp://10.0.0.2:41234.
    public var dataEndpoint: String
    /// Hash of the worker's own config, when it was given one (nil: take the coordinator's).
    public var configHash: String?

    public init(version: String, host: String, pid: Int32, threads: Int, dataEndpoint: String, configHash: String?) {
        self.version = version
        self.host = host
        self.pid = pid
        self.threads = threads
        self.dataEndpoint = dataEndpoint
        self.configHash = configHash
    }
}

/// A welcomed worker has opened its dataset (the config's or its own `--data`) and is ready.
public struct Ready: Codable, Sendable, Equatable {
    public var workerID: UInt64
    /// Content hash of the dataset the worker mapped.
    public var manifestHash: String

    public init(workerID: UInt64, manifestHash: String) {
        self.workerID = workerID
        self.manifestHash = manifestHash
    }
}

/// The coordinator's answer to a registration it accepts.
public struct Welcome: Codable, Sendable, Equatable {
    public var workerID: UInt64
    /// The job config (YAML text) and its hash.
    public var config: String
    public var configHash: String
    /// Heartbeat period the coordinator expects, seconds.
    public var heartbeatSeconds: Double

    public init(workerID: UInt64, config: String, configHash: String, heartbeatSeconds: Double) {
        self.workerID = workerID
        self.config = config
        self.configHash = configHash
        self.heartbeatSeconds = heartbeatSeconds
    }
}

/// A place in a ring: who is who, where to start, how far to go.
public struct Assignment: Codable, Sendable, Equatable {
    public var generation: UInt64
    public var rank: Int
    public var world: Int
    /// Data-plane endpoints of every rank, in rank order (worker r connects to r+1 mod W).
    public var endpoints: [String]
    /// Global step to start from (0 for a fresh start).
    public var startStep: Int
    /// Checkpoint to load before starting (nil: the seeded initialisation).
    public var resume: String?
    /// Steps may run while the global step is below this.
    public var leaseEnd: Int
    /// The job's last global step (the plan's total, or fewer when the coordinator was told to stop early).
    public var totalSteps: Int
    /// Rank 0 writes a checkpoint every `checkpoint.every` steps and at every phase end, into
    /// `checkpoint.directory` (shared storage), keeping the last `checkpoint.keep`.
    public var checkpoint: CheckpointPolicy
    /// The generation's direct-link key: 64 hex digits (32 random bytes), fresh for every
    /// generation, from which the ranks' direct links derive their handshake and frame keys
    /// (sent only over the encrypted control plane; nil when the job runs `--insecure`).
    public var linkKey: String?

    public init(generation: UInt64, rank: Int, world: Int, endpoints: [String], startStep: Int, resume: String?, leaseEnd: Int, totalSteps: Int, checkpoint: CheckpointPolicy, linkKey: String? = nil) {
        self.generation = generation
        self.rank = rank
        self.world = world
        self.endpoints = endpoints
        self.startStep = startStep
        self.resume = resume
        self.leaseEnd = leaseEnd
        self.totalSteps = totalSteps
        self.checkpoint = checkpoint
        self.linkKey = linkKey
    }
}

/// Where and how often a generation's rank 0 checkpoints.
public struct CheckpointPolicy: Codable, Sendable, Equatable {
    /// Absolute directory (shared by every host that may run rank 0); empty: no checkpoints.
    public var directory: String
    /// Every this many global steps (0: only at phase ends and when asked).
    public var every: Int
    /// Checkpoints kept besides every phase end.
    public var keep: Int

    public init(directory: String, every: Int, keep: Int) {
        self.directory = directory
        self.every = every
        self.keep = keep
    }
}

/// A longer lease for the current generation.
public struct Lease: Codable, Sendable, Equatable {
    public var generation: UInt64
    public var leaseEnd: Int

    public init(generation: UInt64, leaseEnd: Int) {
        self.generation = generation
        self.leaseEnd = leaseEnd
    }
}

/// Asks rank 0 for a checkpoint after the step it is running (a stop request, or the time-based
/// schedule).
public struct CheckpointNow: Codable, Sendable, Equatable {
    public var generation: UInt64
    public var reason: String

    public init(generation: UInt64, reason: String) {
        self.generation = generation
        self.reason = ControlLimits.clip(reason)
    }
}

/// Per-worker health and timing, sent every heartbeat period.
public struct Heartbeat: Codable, Sendable, Equatable {
    public var workerID: UInt64
    public var generation: UInt64
    /// Global steps this worker has completed.
    public var step: Int
    public var state: WorkerState
    /// Mean seconds per step spent computing and communicating over the last period.
    public var computeSeconds: Double
    public var commSeconds: Double
    /// All-reduce throughput (bus bandwidth) over the last period, GB/s.
    public var allreduceGBs: Double

    public init(workerID: UInt64, generation: UInt64, step: Int, state: WorkerState, computeSeconds: Double, commSeconds: Double, allreduceGBs: Double) {
        self.workerID = workerID
        self.generation = generation
        self.step = step
        self.state = state
        self.computeSeconds = computeSeconds
        self.commSeconds = commSeconds
        self.allreduceGBs = allreduceGBs
    }
}

/// Rank 0's account of one finished step (asynchronous, off the critical path).
public struct StepReport: Codable, Sendable, Equatable {
    public var generation: UInt64
    public var step: Int
    public var phase: Int
    public var epoch: Int
    public var loss: [String: Double]
    public var lr: [String: Double]
    public var logitScale: Double
    public var gradNorm: Double
    public var samplesPerSecond: Double
    public var stepSeconds: Double
    /// The step's metrics.jsonl line, as `proclip train` writes it.
    public var json: String

    public init(generation: UInt64, step: Int, phase: Int, epoch: Int, loss: [String: Double], lr: [String: Double], logitScale: Double, gradNorm: Double, samplesPerSecond: Double, stepSeconds: Double, json: String) {
        self.generation = generation
        self.step = step
        self.phase = phase
        self.epoch = epoch
        self.loss = loss
        self.lr = lr
        self.logitScale = logitScale
        self.gradNorm = gradNorm
        self.samplesPerSecond = samplesPerSecond
        self.stepSeconds = stepSeconds
        self.json = json
    }
}

/// A worker that cannot go on in this generation (a peer timed out, a bad value, …).
public struct FailureReport: Codable, Sendable, Equatable {
    public var workerID: UInt64
    public var generation: UInt64
    public var step: Int
    public var reason: String
    /// Whether no generation can go on either (a non-finite loss, a bad value): the job stops.
    public var fatal: Bool

    public init(workerID: UInt64, generation: UInt64, step: Int, reason: String, fatal: Bool = false) {
        self.workerID = workerID
        self.generation = generation
        self.step = step
        self.reason = ControlLimits.clip(reason)
        self.fatal = fatal
    }
}

/// Why the coordinator refuses or stops a worker.
public struct Refusal: Codable, Sendable, Equatable {
    public var reason: String

    public init(reason: String) {
        self.reason = ControlLimits.clip(reason)
    }
}
