// Every field of the worker ↔ coordinator messages checked on arrival (`ControlPayload`).

extension WorkerHello: ControlPayload {
    public func validated() throws -> WorkerHello {
        let f = Fields("WorkerHello")
        try f.name("version", version, max: ControlLimits.maxVersion)
        try f.name("host", host, max: ControlLimits.maxHost)
        try f.require(pid >= 1, "pid", "\(pid) is not a process id")
        try f.range("threads", threads, 1...ControlLimits.maxThreads)
        try f.endpoint("dataEndpoint", dataEndpoint)
        if let configHash { try f.name("configHash", configHash, max: ControlLimits.maxHash) }
        return self
    }
}

extension Ready: ControlPayload {
    public func validated() throws -> Ready {
        let f = Fields("Ready")
        try f.id("workerID", workerID)
        try f.name("manifestHash", manifestHash, max: ControlLimits.maxHash)
        return self
    }
}

extension Welcome: ControlPayload {
    public func validated() throws -> Welcome {
        let f = Fields("Welcome")
        try f.id("workerID", workerID)
        try f.text("config", config, max: ControlLimits.json)
        try f.name("configHash", configHash, max: ControlLimits.maxHash)
        try f.number("heartbeatSeconds", heartbeatSeconds, max: ControlLimits.maxHeartbeatSeconds)
        try f.require(heartbeatSeconds > 0, "heartbeatSeconds", "\(heartbeatSeconds) is not positive")
        return self
    }
}

extension Assignment: ControlPayload {
    /// Besides each field's range: `0 ≤ rank < world = endpoints.count` and
    /// `startStep ≤ leaseEnd ≤ totalSteps`.
    public func validated() throws -> Assignment {
        let f = Fields("Assignment")
        try f.generation("generation", generation)
        try f.range("world", world, 1...ControlLimits.maxWorld)
        try f.range("rank", rank, 0..<world)
        try f.require(endpoints.count == world, "endpoints", "has \(endpoints.count) entries for a world of \(world)")
        for (i, e) in endpoints.enumerated() { try f.endpoint("endpoints[\(i)]", e) }
        try f.step("totalSteps", totalSteps)
        try f.range("startStep", startStep, 0...totalSteps)
        try f.range("leaseEnd", leaseEnd, startStep...totalSteps)
        if let resume { try f.path("resume", resume) }
        try f.nested("checkpoint", checkpoint)
        if let linkKey {
            try f.require(linkKey.utf8.count == 64 && linkKey.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) },
                          "linkKey", "is not 64 lower-case hex digits")
        }
        return self
    }
}

extension CheckpointPolicy: ControlPayload {
    public func validated() throws -> CheckpointPolicy {
        let f = Fields("CheckpointPolicy")
        try f.path("directory", directory, empty: true)
        try f.step("every", every)
        try f.range("keep", keep, 0...ControlLimits.maxKeep)
        return self
    }
}

extension Lease: ControlPayload {
    /// Generation 0 is legal: the coordinator answers heartbeats with the current lease before any
    /// generation has formed.
    public func validated() throws -> Lease {
        try Fields("Lease").step("leaseEnd", leaseEnd)
        return self
    }
}

extension CheckpointNow: ControlPayload {
    public func validated() throws -> CheckpointNow {
        let f = Fields("CheckpointNow")
        try f.generation("generation", generation)
        try f.text("reason", reason, max: ControlLimits.maxReason, empty: true)
        return self
    }
}

extension Heartbeat: ControlPayload {
    /// Generation 0 is legal: a worker heartbeats before its first assignment.
    public func validated() throws -> Heartbeat {
        let f = Fields("Heartbeat")
        try f.id("workerID", workerID)
        try f.step("step", step)
        try f.number("computeSeconds", computeSeconds)
        try f.number("commSeconds", commSeconds)
        try f.number("allreduceGBs", allreduceGBs)
        return self
    }
}

extension StepReport: ControlPayload {
    public func validated() throws -> StepReport {
        let f = Fields("StepReport")
        try f.generation("generation", generation)
        try f.range("step", step, 1...ControlLimits.maxStep)
        try f.range("phase", phase, 0..<ControlLimits.maxPhases)
        try f.step("epoch", epoch)
        try f.terms("loss", loss, signed: true)
        try f.terms("lr", lr, signed: false)
        try f.number("logitScale", logitScale, signed: true)
        try f.number("gradNorm", gradNorm)
        try f.number("samplesPerSecond", samplesPerSecond)
        try f.number("stepSeconds", stepSeconds)
        try f.text("json", json, max: ControlLimits.maxMetricsLine)
        return self
    }
}

extension FailureReport: ControlPayload {
    public func validated() throws -> FailureReport {
        let f = Fields("FailureReport")
        try f.id("workerID", workerID)
        try f.generation("generation", generation)
        try f.step("step", step)
        try f.text("reason", reason, max: ControlLimits.maxReason, empty: true)
        return self
    }
}

extension Refusal: ControlPayload {
    public func validated() throws -> Refusal {
        try Fields("Refusal").text("reason", reason, max: ControlLimits.maxReason, empty: true)
        return self
    }
}
