// Every field of the smaller control messages checked on arrival (`ControlPayload`).

extension ParamsHeader: ControlPayload {
    /// `chunks` is exactly the number of `ControlLimits.paramsChunk`-byte pieces `bytes` needs
    /// (1…`maxParamsChunks`), so an upload that passes can complete.
    public func validated() throws -> ParamsHeader {
        let f = Fields("ParamsHeader")
        try f.step("step", step)
        try f.range("phase", phase, 0..<ControlLimits.maxPhases)
        try f.range("chunks", chunks, 1...ControlLimits.maxParamsChunks)
        let size = ControlLimits.paramsChunk
        try f.range("bytes", bytes, ((chunks - 1) * size + 1)...(chunks * size))
        return self
    }
}

extension CheckpointWritten: ControlPayload {
    public func validated() throws -> CheckpointWritten {
        let f = Fields("CheckpointWritten")
        try f.step("step", step)
        try f.path("path", path)
        return self
    }
}

extension CheckpointFailed: ControlPayload {
    public func validated() throws -> CheckpointFailed {
        let f = Fields("CheckpointFailed")
        try f.step("step", step)
        try f.path("path", path)
        try f.text("reason", reason, max: ControlLimits.maxReason, empty: true)
        return self
    }
}

extension Leave: ControlPayload {
    public func validated() throws -> Leave {
        let f = Fields("Leave")
        try f.id("workerID", workerID)
        try f.text("reason", reason, max: ControlLimits.maxReason, empty: true)
        return self
    }
}

extension Stop: ControlPayload {
    public func validated() throws -> Stop {
        try Fields("Stop").text("reason", reason, max: ControlLimits.maxReason, empty: true)
        return self
    }
}

extension StatusRequest: ControlPayload {
    /// No fields.
    public func validated() throws -> StatusRequest { self }
}

extension Bound: ControlPayload {
    public func validated() throws -> Bound {
        let f = Fields("Bound")
        try f.id("workerID", workerID)
        try f.generation("generation", generation)
        return self
    }
}

extension Go: ControlPayload {
    public func validated() throws -> Go {
        try Fields("Go").generation("generation", generation)
        return self
    }
}
