import Wire

/// The control plane's message types (0x20…0x3F) and the largest payload each may carry.
extension MessageType {
    public static let register = MessageType(rawValue: 0x20)
    public static let welcome = MessageType(rawValue: 0x21)
    public static let refuse = MessageType(rawValue: 0x22)
    public static let assign = MessageType(rawValue: 0x23)
    public static let lease = MessageType(rawValue: 0x24)
    public static let heartbeat = MessageType(rawValue: 0x25)
    public static let stepReport = MessageType(rawValue: 0x26)
    public static let failure = MessageType(rawValue: 0x27)
    public static let stop = MessageType(rawValue: 0x28)
    public static let leave = MessageType(rawValue: 0x29)
    /// Parameters of one step: a `ParamsHeader` message, then `chunks` raw chunks.
    public static let paramsHeader = MessageType(rawValue: 0x2A)
    public static let paramsChunk = MessageType(rawValue: 0x2B)
    public static let checkpointWritten = MessageType(rawValue: 0x2C)
    public static let ready = MessageType(rawValue: 0x2D)
    /// A worker of a new generation has closed its old ring and bound its endpoint again.
    public static let bound = MessageType(rawValue: 0x2E)
    /// Every member of the generation is bound: connect.
    public static let go = MessageType(rawValue: 0x2F)
    public static let checkpointNow = MessageType(rawValue: 0x32)
    /// Rank 0 could not write a checkpoint.
    public static let checkpointFailed = MessageType(rawValue: 0x33)
    public static let statusRequest = MessageType(rawValue: 0x30)
    public static let statusReply = MessageType(rawValue: 0x31)
}

/// Size limits of the control plane.
public enum ControlLimits {
    /// JSON messages (a config, a status report) stay well below this.
    public static let json = 4 << 20
    /// One chunk of an uploaded parameter file.
    public static let paramsChunk = 8 << 20

    /// What the coordinator accepts.
    public static let coordinatorAccepts: [(MessageType, maxPayload: Int)] = [
        (.register, json), (.ready, json), (.bound, json), (.heartbeat, json), (.stepReport, json), (.failure, json), (.leave, json),
        (.paramsHeader, json), (.paramsChunk, paramsChunk), (.checkpointWritten, json), (.checkpointFailed, json), (.statusRequest, json),
    ]

    /// What a worker accepts.
    public static let workerAccepts: [(MessageType, maxPayload: Int)] = [
        (.welcome, json), (.refuse, json), (.assign, json), (.go, json), (.lease, json), (.stop, json), (.checkpointNow, json),
    ]

    /// What `proclip status` accepts.
    public static let statusAccepts: [(MessageType, maxPayload: Int)] = [(.statusReply, json), (.refuse, json)]

    // Field limits, checked by every message's `validated()`.

    /// Most ranks in a generation.
    public static let maxWorld = 4096
    /// Largest global step (far beyond any plan; keeps step arithmetic clear of overflow).
    public static let maxStep = 1 << 40
    /// Most phases in a plan.
    public static let maxPhases = 1024
    /// Most threads a worker may announce.
    public static let maxThreads = 4096
    /// Longest reason (refusals, failures, stops, goodbyes), in UTF-8 bytes; longer ones are cut
    /// by the messages' initialisers.
    public static let maxReason = 4 << 10
    /// Longest host name (DNS's limit).
    public static let maxHost = 255
    /// Longest endpoint, version and hash.
    public static let maxEndpoint = 1024
    public static let maxVersion = 64
    public static let maxHash = 256
    /// Longest path (Linux's PATH_MAX).
    public static let maxPath = 4096
    /// Longest name (job, phase, kind, loss term, …).
    public static let maxName = 256
    /// Most named terms in a loss or learning-rate table.
    public static let maxTerms = 64
    /// Longest metrics.jsonl line carried by a step report.
    public static let maxMetricsLine = 64 << 10
    /// Longest status event.
    public static let maxEventText = 16 << 10
    /// Most events and workers in a status report.
    public static let maxEvents = 1000
    public static let maxWorkers = 1 << 16
    /// Most messages in one batch (step reports).
    public static let maxBatch = 10_000
    /// Longest heartbeat period, seconds.
    public static let maxHeartbeatSeconds = 3600.0
    /// Most checkpoints kept.
    public static let maxKeep = 1_000_000
    /// Most chunks in a parameter upload.
    public static let maxParamsChunks = 1 << 16

    /// `text` cut to at most `maxReason` UTF-8 bytes (on a character boundary), for reasons built
    /// from error descriptions of any length.
    public static func clip(_ text: String, to limit: Int = maxReason) -> String {
        if text.utf8.count <= limit { return text }
        var out = ""
        var used = 0
        let marker = " …"
        for c in text {
            let n = c.utf8.count
            if used + n + marker.utf8.count > limit { break }
            out.append(c)
            used += n
        }
        return out + marker
    }
}

/// Announces an upload of parameters (a safetensors file in `chunks` pieces).
public struct ParamsHeader: Codable, Sendable, Equatable {
    public var step: Int
    public var phase: Int
    public var final: Bool
    public var bytes: Int
    public var chunks: Int

    public init(step: Int, phase: Int, final: Bool, bytes: Int, chunks: Int) {
        self.step = step
        self.phase = phase
        self.final = final
        self.bytes = bytes
        self.chunks = chunks
    }
}

/// A checkpoint rank 0 wrote.
public struct CheckpointWritten: Codable, Sendable, Equatable {
    public var step: Int
    public var path: String

    public init(step: Int, path: String) {
        self.step = step
        self.path = path
    }
}

/// A checkpoint rank 0 could not write (the file it was writing, and why).
public struct CheckpointFailed: Codable, Sendable, Equatable {
    public var step: Int
    public var path: String
    public var reason: String

    public init(step: Int, path: String, reason: String) {
        self.step = step
        self.path = path
        self.reason = ControlLimits.clip(reason)
    }
}

/// A goodbye; `reason` says why.
public struct Leave: Codable, Sendable, Equatable {
    public var workerID: UInt64
    public var reason: String

    public init(workerID: UInt64, reason: String) {
        self.workerID = workerID
        self.reason = ControlLimits.clip(reason)
    }
}

/// An order to stop.
public struct Stop: Codable, Sendable, Equatable {
    public var reason: String

    public init(reason: String) { self.reason = ControlLimits.clip(reason) }
}

/// Asks for a status report (its body is an empty JSON object).
public struct StatusRequest: Codable, Sendable, Equatable {
    private enum CodingKeys: CodingKey {}

    public init() {}

    /// Requires a JSON object (the synthesised decoder of a type without fields would take any
    /// payload at all, even one that is not JSON).
    public init(from decoder: any Decoder) throws {
        _ = try decoder.container(keyedBy: CodingKeys.self)
    }
}

/// A worker's answer to an assignment: it left its previous ring and listens again.
public struct Bound: Codable, Sendable, Equatable {
    public var workerID: UInt64
    public var generation: UInt64

    public init(workerID: UInt64, generation: UInt64) {
        self.workerID = workerID
        self.generation = generation
    }
}

/// Every member of `generation` is bound: the ring may connect. (A fence between generations: no
/// rank connects while a peer still listens with its previous ring, whose messages would be lost.)
public struct Go: Codable, Sendable, Equatable {
    public var generation: UInt64

    public init(generation: UInt64) { self.generation = generation }
}
