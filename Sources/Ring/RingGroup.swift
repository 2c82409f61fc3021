import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A group of ranks joined in a ring, running collectives on float32 buffers.
///
/// Set up once per membership generation (binding, connecting and a hello round), then run
/// collectives many times; steady-state calls allocate nothing in the group (the ZeroMQ
/// transport's only allocations are libzmq's per-message ones, see `ZmqRingTransport`).
///
/// Every rank must call the same collectives in the same order with the same sizes. Messages
/// carry (generation, step, collective, chunk): traffic of an older generation is dropped and
/// counted, a newer generation ends the group (`RingError.generationChanged`), anything else out
/// of sequence is a `protocolViolation`. Every wait is bounded by `options.timeout`.
///
/// Thread safety: a group is used from one thread at a time (a dedicated thread: its waits
/// block in `zmq_poll`, which must not run inside a Swift concurrency task). Only `abandon()`
/// may be called from any thread. After any error but `invalidArgument` the group is closed:
/// create a new one (normally for a new generation).
public final class RingGroup {
    /// This rank, in `0..<worldSize`.
    public let rank: Int
    /// Number of ranks.
    public let worldSize: Int
    /// Membership generation, fixed for the group's life.
    public let generation: UInt64
    /// Options in force.
    public let options: RingOptions
    /// The training step; it tags every message, and collectives are numbered from 0 within a step.
    public var step: UInt64 = 0 {
        didSet { if step != oldValue { collective = 0 } }
    }

    let transport: RingTransport
    let blocks: BlockTable
    /// W slots for the latency-bound all-reduce, allocated once.
    let scratch: UnsafeMutableBufferPointer<Float>
    var collective: UInt32 = 0
    private(set) var failure: String?
    /// Whether every rank is connected to every other (see `RingOptions.directMaxWorld`).
    private(set) var direct = false

    /// Size in bytes of a hello payload: rank, world size, streams, segment bytes, protocol,
    /// then a direct endpoint, NUL-padded.
    static let helloBytes = 256

    /// Binds `bind`, connects to the successor's endpoint `successor`, and waits (up to
    /// `options.connectTimeout`) until the predecessor has connected and agrees on the options.
    /// Use `init(listener:…)` when the bound port must be published before the successor is known.
    public convenience init(
        rank: Int, worldSize: Int, bind: String, successor: String, generation: UInt64,
        options: RingOptions = RingOptions()
    ) throws {
        let listener = try RingListener(bind: bind, options: options)
        try self.init(listener: listener, rank: rank, worldSize: worldSize, successor: successor, generation: generation)
    }

    /// Joins the ring over ZeroMQ with an already bound `listener` (its options apply).
    public convenience init(
        listener: RingListener, rank: Int, worldSize: Int, successor: String, generation: UInt64
    ) throws {
        let transport = try ZmqRingTransport(listener: listener, rank: rank, worldSize: worldSize, successor: successor)
        try self.init(transport: transport, generation: generation, options: listener.options)
    }

    /// Joins the ring over any transport (e.g. `MemoryRing(worldSize:).transport(rank:)`).
    public init(transport: RingTransport, generation: UInt64, options: RingOptions = RingOptions()) throws {
        try options.validate()
        self.transport = transport
        rank = transport.rank
        worldSize = transport.worldSize
        self.generation = generation
        self.options = options
        blocks = BlockTable(worldSize: worldSize)
        let slot = worldSize > 1 ? min(options.smallAllReduceBytes, (4 << 20) / worldSize) / 4 : 0
        scratch = .allocate(capacity: max(1, slot * worldSize))
        scratch.initialize(repeating: 0)
        do { try hello() } catch {
            transport.close()
            throw mapped(error, timeout: options.connectTimeout)
        }
    }

    deinit {
        transport.close()  // first: no send may still read the scratch
        scratch.deallocate()
    }

    /// Messages dropped so far (malformed, or stale: of an older generation).
    public var drops: DropCounts { transport.drops }

    /// Makes the collective running on another thread (and every later call) fail promptly
    /// with `RingError.abandoned`. Call it when membership changes. Thread-safe.
    public func abandon() { transport.abandon() }

    /// Closes the group; later calls throw `.closed`.
    public func close() {
        if failure == nil { failure = "closed by its owner" }
        transport.close()
    }

    /// Every rank sends a hello on each stream and checks its predecessor's; with direct
    /// connections, the hellos then go round the ring so every rank learns every direct
    /// endpoint, and one direct barrier proves the connections.
    private func hello() throws {
        if worldSize == 1 { return }
        let w = worldSize, prev = (rank + w - 1) % w, next = (rank + 1) % w
        let deadline = Deadline.after(seconds: options.connectTimeout)
        let useDirect = w <= options.directMaxWorld && transport.directEndpoint != nil
        let endpoint = useDirect ? transport.directEndpoint! : ""
        guard endpoint.utf8.count <= RingGroup.helloBytes - 20 else {
            throw RingError.invalidArgument("direct endpoint \(endpoint) longer than \(RingGroup.helloBytes - 20) bytes")
        }
        let config = [UInt32(rank), UInt32(w), UInt32(options.streams), UInt32(options.segmentBytes), useDirect ? 1 : 0]
        // Records of every rank: 5 little-endian UInt32s, then the endpoint.
        var records = [UInt8](repeating: 0, count: w * RingGroup.helloBytes)
        records.withUnsafeMutableBytes { raw in
            let mine = raw.baseAddress! + rank * RingGroup.helloBytes
            for (i, v) in config.enumerated() { mine.storeBytes(of: v.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            for (i, byte) in endpoint.utf8.enumerated() { mine.storeBytes(of: byte, toByteOffset: 20 + i, as: UInt8.self) }
        }
        var tag = FrameHeader(type: .ringHello, generation: generation, step: .max, collective: 0, chunk: 0)
        try records.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            func record(_ r: Int) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(start: base + r * RingGroup.helloBytes, count: RingGroup.helloBytes)
            }
            for k in 0..<options.streams {
                tag.chunk = UInt32(k)
                try transport.send(record(rank), to: next, tag: tag, deadline: deadline)
            }
            // The predecessor's record arrives on every stream; then, with direct connections,
            // the others' records travel on round the ring (W−2 more hops).
            let rounds = options.streams + (useDirect ? w - 2 : 0)
            for k in 0..<rounds {
                let from = k < options.streams ? prev : (rank + w - 2 - (k - options.streams)) % w
                tag.chunk = UInt32(k)
                let forward = k >= options.streams - 1 && k < rounds - 1 && useDirect
                    ? Forward(peer: next, tag: FrameHeader(type: .ringHello, generation: generation, step: .max, collective: 0, chunk: UInt32(k + 1)))
                    : nil
                try transport.receive(from: prev, tag: tag, byteCount: RingGroup.helloBytes, deadline: deadline, forward: forward) { p in
                    memcpy(base + from * RingGroup.helloBytes, p.baseAddress!, RingGroup.helloBytes)
                }
                let got = (0..<5).map { UInt32(littleEndian: (base + from * RingGroup.helloBytes).loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
                let want = [UInt32(from), UInt32(w), UInt32(options.streams), UInt32(options.segmentBytes), useDirect ? 1 : 0]
                guard got == want else {
                    throw RingError.protocolViolation(
                        "hello from rank \(from): (rank, world, streams, segment bytes, direct) = \(got), expected \(want)")
                }
            }
        }
        try transport.awaitSendsReleased(deadline: deadline)
        guard useDirect else { return }
        let endpoints = (0..<w).map { r in
            records.withUnsafeBytes { raw in
                let field = raw[(r * RingGroup.helloBytes + 20)..<((r + 1) * RingGroup.helloBytes)]
                return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        try transport.connectDirect(endpoints)
        try directBarrier(FrameHeader(type: .ringDirectBarrier, generation: generation, step: .max, collective: 0, chunk: 0), deadline: { deadline })
        direct = true
    }

    /// Every rank sends an empty message to every other and waits for theirs: one hop.
    func directBarrier(_ tag: FrameHeader, deadline: () -> Deadline) throws {
        var t = tag
        t.type = .ringDirectBarrier
        t.chunk = UInt32(rank)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        for k in 1..<worldSize { try transport.send(none, to: (rank + k) % worldSize, tag: t, deadline: deadline()) }
        for k in 1..<worldSize {
            let peer = (rank + worldSize - k) % worldSize
            t.chunk = UInt32(peer)
            try transport.receive(from: peer, tag: t, byteCount: 0, deadline: deadline(), forward: nil) { _ in }
        }
    }

    /// Runs one collective: numbers it, and on failure closes the group so that no caller
    /// memory stays referenced.
    @inline(__always)
    func perform(_ type: MessageType, _ body: (inout Link) throws -> Void) throws {
        if let failure { throw RingError.closed(reason: failure) }
        var link = Link(
            transport: transport,
            tag: FrameHeader(type: type, generation: generation, step: step, collective: collective, chunk: 0),
            timeout: options.timeout)
        collective &+= 1
        do { try body(&link) } catch {
            let e = mapped(error, timeout: options.timeout)
            failure = "\(e)"
            transport.close()
            throw e
        }
    }

    /// Errors as the caller sees them: transport errors wrapped, timeouts with their length.
    private func mapped(_ error: Error, timeout: Double) -> RingError {
        switch error {
        case RingError.timedOut(let what, _): return .timedOut(waitingFor: what, seconds: timeout)
        case let e as RingError: return e
        case let e as WireError: return .transport(e.description)
        default: return .transport("\(error)")
        }
    }

    /// Refuses a call before anything is sent.
    @inline(__always)
    func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw RingError.invalidArgument(message()) }
    }

    /// Floats per segment.
    @inline(__always) var segmentFloats: Int { options.segmentBytes / 4 }
}
