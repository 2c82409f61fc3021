/// What `proclip status` shows: the job, its progress and every worker.
public struct StatusReport: Codable, Sendable, Equatable {
    /// The phase the job is in, and its progress.
    public struct Phase: Codable, Sendable, Equatable {
        public var index: Int
        public var count: Int
        public var name: String
        public var kind: String
        public var epoch: Int
        public var step: Int
        public var steps: Int

        public init(index: Int, count: Int, name: String, kind: String, epoch: Int, step: Int, steps: Int) {
            self.index = index
            self.count = count
            self.name = name
            self.kind = kind
            self.epoch = epoch
            self.step = step
            self.steps = steps
        }
    }

    /// One registered worker, as the coordinator sees it.
    public struct Worker: Codable, Sendable, Equatable {
        public var id: UInt64
        public var rank: Int?
        public var host: String
        public var pid: Int32
        public var state: MemberState
        public var step: Int
        public var heartbeatAgeSeconds: Double
        public var computeSeconds: Double
        public var commSeconds: Double
        public var allreduceGBs: Double

        public init(id: UInt64, rank: Int?, host: String, pid: Int32, state: MemberState, step: Int, heartbeatAgeSeconds: Double,
                    computeSeconds: Double, commSeconds: Double, allreduceGBs: Double) {
            self.id = id
            self.rank = rank
            self.host = host
            self.pid = pid
            self.state = state
            self.step = step
            self.heartbeatAgeSeconds = heartbeatAgeSeconds
            self.computeSeconds = computeSeconds
            self.commSeconds = commSeconds
            self.allreduceGBs = allreduceGBs
        }
    }

    /// A recent log line of the coordinator.
    public struct Event: Codable, Sendable, Equatable {
        /// Seconds since the coordinator started.
        public var time: Double
        public var text: String

        public init(time: Double, text: String) {
            self.time = time
            self.text = text
        }
    }

    public var job: String
    public var state: JobState
    public var configHash: String
    public var phase: Phase
    public var step: Int
    public var totalSteps: Int
    public var elapsedSeconds: Double
    public var etaSeconds: Double?
    public var samplesPerSecond: Double?
    /// Latest and smoothed (exponential moving average) loss terms.
    public var loss: [String: Double]
    public var lossSmoothed: [String: Double]
    public var lr: [String: Double]
    public var logitScale: Double?
    public var worldSize: Int
    public var generation: UInt64
    public var lastCheckpoint: String?
    public var lastCheckpointStep: Int?
    public var workers: [Worker]
    public var events: [Event]
    public var droppedMessages: Int
    /// How the control plane is secured: "curve" (the job's keys) or "insecure".
    public var security: String

    public init(job: String, state: JobState, configHash: String, phase: Phase, step: Int, totalSteps: Int, elapsedSeconds: Double,
                etaSeconds: Double?, samplesPerSecond: Double?, loss: [String: Double], lossSmoothed: [String: Double],
                lr: [String: Double], logitScale: Double?, worldSize: Int, generation: UInt64, lastCheckpoint: String?,
                lastCheckpointStep: Int?, workers: [Worker], events: [Event], droppedMessages: Int, security: String = "curve") {
        self.job = job
        self.state = state
        self.configHash = configHash
        self.phase = phase
        self.step = step
        self.totalSteps = totalSteps
        self.elapsedSeconds = elapsedSeconds
        self.etaSeconds = etaSeconds
        self.samplesPerSecond = samplesPerSecond
        self.loss = loss
        self.lossSmoothed = lossSmoothed
        self.lr = lr
        self.logitScale = logitScale
        self.worldSize = worldSize
        self.generation = generation
        self.lastCheckpoint = lastCheckpoint
        self.lastCheckpointStep = lastCheckpointStep
        self.workers = workers
        self.events = events
        self.droppedMessages = droppedMessages
        self.security = security
    }
}
