import Basics
import Wire

// The direct-link part of the ZeroMQ transport: connecting the links, direct messages, and
// the streaming exchanges with the ring neighbours.
extension ZmqRingTransport {
    /// Connects to every other rank's direct links (`endpoints[r]`, this rank's ignored) and
    /// accepts theirs, or only the ring neighbours'. No direct message is larger than a rank's
    /// slot of the group's scratch (none is sent between ring neighbours only: only exchanges).
    public func connectDirect(_ endpoints: [String], generation: UInt64, ringNeighboursOnly: Bool, deadline: Deadline) throws {
        guard endpoints.count == worldSize else { throw RingError.invalidArgument("\(endpoints.count) direct endpoints") }
        try listener.direct.connect(
            rank: rank, endpoints: endpoints, generation: generation,
            maxPayload: ringNeighboursOnly ? 0 : listener.options.smallAllReduceSlotBytes(worldSize: worldSize),
            ringNeighboursOnly: ringNeighboursOnly, deadline: deadline,
            validator: &validator, check: { try checkUsable() })
    }

    /// Over the direct links, with the ring neighbours only. Between ranks joined over `ipc://`
    /// the payload goes through the successor's shared-memory slots (one copy in, and the
    /// receiver reads it in place) and the link carries only its descriptor; the received
    /// payload then stays in this rank's slot until the next call.
    @discardableResult
    public func exchange(
        _ outgoing: UnsafeRawBufferPointer, to next: Int, tag sendTag: FrameHeader?,
        _ incoming: UnsafeMutableRawBufferPointer, from prev: Int, tag receiveTag: FrameHeader?,
        deadline: Deadline
    ) throws -> UnsafeRawPointer? {
        try checkUsable()
        releaseHeldSlot()
        guard worldSize > 1, listener.direct.isConnected else {
            throw RingError.invalidArgument("exchange needs the direct links, which this group has not connected")
        }
        guard next == successor, prev == predecessor else {
            throw RingError.invalidArgument("rank \(rank) exchanges only with its successor \(successor) and predecessor \(predecessor), not \(next) and \(prev)")
        }
        var header = sendTag, payload = outgoing
        if let tag = sendTag, outgoing.count >= SharedSlots.descriptorBytes, let out = sharedOut, out.put(outgoing, descriptor: descriptor) {
            header!.type = tag.type.sharedPayload
            payload = UnsafeRawBufferPointer(start: descriptor, count: SharedSlots.descriptorBytes)
        }
        let slots = receiveTag == nil ? nil : listener.sharedSlots
        let shared = try listener.direct.exchange(
            send: header, payload, to: next, receive: receiveTag, into: incoming, from: prev,
            head: slots == nil ? nil : UnsafeMutableRawBufferPointer(start: descriptorIn, count: SharedSlots.descriptorBytes),
            deadline: deadline, spinNanoseconds: spinNanoseconds, validator: &validator, check: { try checkUsable() })
        guard shared, let slots else { return UnsafeRawPointer(incoming.baseAddress) }
        let p = try slots.payload(UnsafeRawBufferPointer(start: descriptorIn, count: SharedSlots.descriptorBytes))
        holdsSlot = true
        guard p.count == incoming.count else {
            throw RingError.protocolViolation("\(receiveTag!): \(p.count) bytes in shared memory from rank \(prev), expected \(incoming.count)")
        }
        return UnsafeRawPointer(p.baseAddress)
    }

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
