// Every field of a status report checked on arrival (`ControlPayload`).

extension StatusReport: ControlPayload {
    public func validated() throws -> StatusReport {
        let f = Fields("StatusReport")
        try f.name("job", job)
        try f.name("configHash", configHash, max: ControlLimits.maxHash)
        try f.nested("phase", phase)
        try f.step("totalSteps", totalSteps)
        try f.step("step", step)
        try f.number("elapsedSeconds", elapsedSeconds)
        if let etaSeconds { try f.number("etaSeconds", etaSeconds) }
        if let samplesPerSecond { try f.number("samplesPerSecond", samplesPerSecond) }
        try f.terms("loss", loss, signed: true)
        try f.terms("lossSmoothed", lossSmoothed, signed: true)
        try f.terms("lr", lr, signed: false)
        if let logitScale { try f.number("logitScale", logitScale) }
        try f.range("worldSize", worldSize, 0...ControlLimits.maxWorld)
        if let lastCheckpoint { try f.path("lastCheckpoint", lastCheckpoint) }
        if let lastCheckpointStep { try f.step("lastCheckpointStep", lastCheckpointStep) }
        try f.count("workers", workers.count, max: ControlLimits.maxWorkers)
        for (i, w) in workers.enumerated() { try f.nested("workers[\(i)]", w) }
        try f.count("events", events.count, max: ControlLimits.maxEvents)
        for (i, e) in events.enumerated() { try f.nested("events[\(i)]", e) }
        try f.require(droppedMessages >= 0, "droppedMessages", "\(droppedMessages) is negative")
        try f.require(security == "curve" || security == "insecure", "security", "is neither curve nor insecure")
        return self
    }
}

extension StatusReport.Phase: ControlPayload {
    public static var messageName: String { "StatusReport.Phase" }

    /// Besides each field's range: `index < count` and `step ≤ steps`.
    public func validated() throws -> StatusReport.Phase {
        let f = Fields(Self.messageName)
        try f.range("count", count, 1...ControlLimits.maxPhases)
        try f.range("index", index, 0..<count)
        try f.name("name", name)
        try f.name("kind", kind)
        try f.step("epoch", epoch)
        try f.step("steps", steps)
        try f.range("step", step, 0...steps)
        return self
    }
}

extension StatusReport.Worker: ControlPayload {
    public static var messageName: String { "StatusReport.Worker" }

    public func validated() throws -> StatusReport.Worker {
        let f = Fields(Self.messageName)
        try f.id("id", id)
        if let rank { try f.range("rank", rank, 0..<ControlLimits.maxWorld) }
        try f.name("host", host, max: ControlLimits.maxHost)
        try f.require(pid >= 1, "pid", "\(pid) is not a process id")
        try f.step("step", step)
        try f.number("heartbeatAgeSeconds", heartbeatAgeSeconds)
        try f.number("computeSeconds", computeSeconds)
        try f.number("commSeconds", commSeconds)
        try f.number("allreduceGBs", allreduceGBs)
        return self
    }
}

extension StatusReport.Event: ControlPayload {
    public static var messageName: String { "StatusReport.Event" }

    public func validated() throws -> StatusReport.Event {
        let f = Fields(Self.messageName)
        try f.number("time", time)
        try f.text("text", text, max: ControlLimits.maxEventText, empty: true)
        return self
    }
}
