import Wire

extension ZmqRingTransport {
    /// Receives the direct message tagged `tag` (its `chunk` names the sender, and the round). Messages from
    /// other senders, or of the next operation, that arrive first are stashed, without copying.
    func receiveDirect(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        guard !stashHeaders.isEmpty else { throw RingError.invalidArgument("direct connections are not set up") }
        for i in stashHeaders.indices where stashHeaders[i] == tag {
            stashHeaders[i] = nil
            let payload = stashPayloads[i]
            try checkSize(payload, byteCount, tag, peer)
            try consume(payload.bytes)
            payload.clear()
            return
        }
        let inbox = listener.directInbox
        var spinUntil: UInt64 = 0
        while true {
            switch try inbox.receiveFrame(header: headerIn, payload: payloadIn, validator: &validator) {
            case .none:
                try wait(inbox, deadline: deadline, spinUntil: &spinUntil, for: "\(tag) from rank \(peer)")
            case .dropped:
                continue
            case .frame(let header):
                if header == tag {
                    try checkSize(payloadIn, byteCount, tag, peer)
                    try consume(payloadIn.bytes)
                    payloadIn.clear()
                    return
                }
                if header.generation < tag.generation || !header.type.isDirect {
                    validator.record(.stale)
                    payloadIn.clear()
                    continue
                }
                if header.generation > tag.generation {
                    throw RingError.generationChanged(ours: tag.generation, seen: header.generation)
                }
                if header.step == tag.step, header.collective == tag.collective, header.type != tag.type {
                    payloadIn.clear()
                    throw RingError.protocolViolation("expected \(tag), received \(header)")
                }
                try keep(header)
            }
        }
    }

    /// Stashes the message just received (header given, payload in `payloadIn`).
    private func keep(_ header: FrameHeader) throws {
        // chunk = round · W + sender (rounds: 0 for the all-to-all, < log2 W for doubling).
        guard Int(header.chunk) < worldSize * 32 else {
            payloadIn.clear()
            throw RingError.protocolViolation("direct message \(header) from an unknown rank")
        }
        guard let free = stashHeaders.firstIndex(where: { $0 == nil }) else {
            payloadIn.clear()
            throw RingError.protocolViolation("direct message \(header) arrived more than one operation early")
        }
        stashPayloads[free].take(from: payloadIn)
        stashHeaders[free] = header
    }
}
