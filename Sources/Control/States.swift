/// The version string a worker and coordinator exchange at registration; a coordinator refuses a
/// worker of another version (their messages may not mean the same thing).
public enum ProclipInfo {
    /// This build's version.
    public static let version = "0.1.0"
}

/// What the job is doing (the coordinator's state, and `StatusReport.state`). The raw values are
/// what `proclip status` prints and `--json` carries.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Too few workers to form a ring.
    case waiting
    /// A generation is training.
    case running
    /// The last step is done; the final evaluation is pending.
    case finishing
    /// The job ended normally.
    case done
    /// A stop was requested (the coordinator is checkpointing or stopping the workers).
    case stopping
    /// The job cannot go on.
    case failed
}

/// A registered worker as the coordinator sees it (`StatusReport.Worker.state`). Legal
/// transitions: `joining` → `standby` (dataset ready) ⇄ `assigned` (in the current generation);
/// `joining`, `standby` or `assigned` → `dead` (heartbeats stopped); any state → `left`.
public enum MemberState: String, Sendable, Codable, CaseIterable {
    /// Welcomed, opening its dataset.
    case joining
    /// Ready, not in the current generation.
    case standby
    /// Holds a rank in the current generation.
    case assigned
    /// Its heartbeats stopped.
    case dead
    /// It said goodbye, or was refused after its welcome.
    case left
}

/// A worker as it sees itself, reported in every `Heartbeat`.
public enum WorkerState: String, Sendable, Codable, CaseIterable {
    /// Registered, waiting for the welcome or opening its dataset.
    case joining
    /// Dataset open, waiting for an assignment.
    case ready
    /// Assigned: loading the checkpoint and joining the ring.
    case connecting
    /// Running leased steps.
    case running
    /// Its generation failed (a peer timed out, …); waiting for the next one.
    case failed
    /// Ran the generation's last step.
    case finished
}
