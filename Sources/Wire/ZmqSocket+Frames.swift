import CZmq

/// What `receiveFrame` found.
public enum FrameReceipt: Equatable {
    /// Nothing was queued.
    case none
    /// A message arrived but was malformed or not accepted; it was consumed and counted.
    case dropped(DropReason)
    /// A valid message: its header; the payload is in the `payload` message given.
    case frame(FrameHeader)
}

extension ZmqSocket {
    /// Sends one message: `header` (encoded into `scratch`, which stays inside the message object)
    /// then `payload`, which is left empty on success. Returns `false`, sending nothing and
    /// leaving `payload` untouched, when the socket cannot take a message now.
    @inline(__always)
    public func sendFrame(_ header: FrameHeader, payload: ZmqMessage, scratch: ZmqMessage) throws -> Bool {
        zmq_msg_close(scratch.pointer)
        try check(zmq_msg_init_size(scratch.pointer, FrameHeader.byteCount), "zmq_msg_init_size(header)")
        header.encode(into: zmq_msg_data(scratch.pointer))
        guard try send(scratch, more: true) else { return false }
        // ZeroMQ delivers a multipart message whole: once its first frame is queued, the rest
        // is not refused for the high-water mark. Still, never wait unbounded.
        for _ in 0..<100 {
            if try send(payload) { return true }
            _ = try waitWritable(milliseconds: 10)
        }
        throw WireError.timedOut("the payload frame of \(header) was not accepted after its header")
    }

    /// Receives one whole message if one is queued: the header frame into `header`, the payload
    /// frame into `payload`, any further frames discarded. Validates it with `validator`.
    @inline(__always)
    public func receiveFrame(header: ZmqMessage, payload: ZmqMessage, validator: inout FrameValidator) throws -> FrameReceipt {
        guard try receive(header) else { return .none }
        var payloadCount: Int? = nil
        var extra = 0
        if header.hasMore {
            // The remaining frames of a message are queued together with its first one.
            _ = try receive(payload)
            payloadCount = payload.count
            while payload.hasMore {
                _ = try receive(payload)
                extra += 1
            }
        }
        let result = validator.validate(header: UnsafeRawBufferPointer(header.bytes), payloadCount: payloadCount, extraFrames: extra)
        header.clear()
        switch result {
        case .success(let h):
            return .frame(h)
        case .failure(let reason):
            payload.clear()
            return .dropped(reason)
        }
    }
}
