import Wire

/// The ring's message types.
extension MessageType {
    /// Connection check sent once per stream when a group starts.
    public static let ringHello = MessageType(rawValue: 0x10)
    /// A segment of the ring all-reduce (reduce-scatter, then all-gather).
    public static let ringAllReduce = MessageType(rawValue: 0x11)
    /// A segment of an all-gather round the ring.
    public static let ringAllGather = MessageType(rawValue: 0x12)
    /// A segment of a reduce-scatter round the ring.
    public static let ringReduceScatter = MessageType(rawValue: 0x13)
    /// A segment of the pipelined broadcast chain.
    public static let ringBroadcast = MessageType(rawValue: 0x14)
    /// A barrier token round the ring.
    public static let ringBarrier = MessageType(rawValue: 0x15)
    /// A point-to-point message to the successor (the throughput benchmark).
    public static let ringPointToPoint = MessageType(rawValue: 0x16)
    /// Latency-bound all-reduce over direct connections (each rank to every other).
    public static let ringDirectReduce = MessageType(rawValue: 0x17)
    /// Barrier over direct connections.
    public static let ringDirectBarrier = MessageType(rawValue: 0x18)
    /// First frame on a direct connection: the sender's rank (in `chunk`) and generation.
    public static let ringDirectHello = MessageType(rawValue: 0x19)

    /// The same ring message with its payload in the link's shared-memory slots: the payload
    /// frame is a 16-byte descriptor (`SharedSlots`). 0x90…0x9F on the wire.
    var sharedPayload: MessageType { MessageType(rawValue: rawValue | 0x80) }

    /// Ring types whose payload may travel in shared memory (not hellos, not direct messages).
    static let sharedPayloadTypes: [MessageType] = [
        .ringAllReduce, .ringAllGather, .ringReduceScatter, .ringBroadcast, .ringBarrier, .ringPointToPoint,
    ]

    /// Whether messages of this type travel over direct connections rather than the ring.
    public var isDirect: Bool { self == .ringDirectReduce || self == .ringDirectBarrier }

    /// Every ring type a ring socket accepts.
    static let ringTypes: [MessageType] = [
        .ringHello, .ringAllReduce, .ringAllGather, .ringReduceScatter, .ringBroadcast, .ringBarrier, .ringPointToPoint,
        .ringDirectReduce, .ringDirectBarrier,
    ]
}
