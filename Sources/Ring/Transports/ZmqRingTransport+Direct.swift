import Wire
import Basics

extension ZmqRingTransport {
    /// Receives the direct message tagged `tag` (its `chunk` names the sender, and the round)
    /// from `peer`'s direct connection, which carries that rank's messages to this one in order.
    func receiveDirect(
        from peer: Int, tag: FrameHeader, byteCount: Int, deadline: Deadline,
        _ consume: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        let links = listener.direct
        while true {
            let (header, payload) = try links.receive(
                from: peer, deadline: deadline, spinNanoseconds: spinNanoseconds, validator: &validator,
                check: { try checkUsable() }, waitingFor: "\(tag) from rank \(peer)")
            defer { links.consumed(peer) }
            guard try classify(header, expected: tag) else {
                validator.record(.stale)
                continue
            }
            guard payload.count == byteCount else {
                throw RingError.protocolViolation("\(tag): \(payload.count) bytes from rank \(peer), expected \(byteCount)")
            }
            return try consume(payload)
        }
    }
}
