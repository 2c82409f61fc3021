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
/// The algorithms see the network only through `RingTransport` (send, receive, exchange,
/// await sends, abandon, close). How the transport joins the group — rank, world size, direct
/// links, shared memory — is `RingTransportSetup`, used only by the hello round, whose
/// `RingTransportCapabilities` the group reads once. Transports: `ZmqRingTransport` between
/// processes (made by `init(listener:…)`), `MemoryRingTransport` between threads for tests.
///
/// Algorithms (each documented with its cost model): all-reduce as reduce-scatter then
/// all-gather round the ring, or for small buffers a gather and an ordered local sum;
/// reduce-scatter and all-gather with per-rank counts; a pipelined broadcast chain; a barrier.
/// Rank order is ring order: number ranks so that neighbours share a host where they can.
/// Groups of up to `options.directMaxWorld` ranks also connect every rank to every other
/// (`DirectLinks`: plain stream sockets, no ZeroMQ I/O thread) for the latency-bound
/// operations and, with `options.directBulk`, the bulk all-reduce, all-gather and
/// reduce-scatter; larger groups connect each rank to its ring neighbours for the latter.
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

    /// The data plane: everything the collectives send and receive goes through it.
    let transport: any RingTransport
    let blocks: BlockTable
    /// W slots for the latency-bound all-reduce, allocated once.
    let scratch: UnsafeMutableBufferPointer<Float>
    var collective: UInt32 = 0
    private(set) var failure: String?
    /// Whether every rank is connected to every other (see `RingOptions.directMaxWorld`).
    var direct = false
    /// Whether large all-reduces, all-gathers and reduce-scatters run as exchanges over the
    /// direct links (else round the ZeroMQ ring); see `RingOptions.directBulk`.
    public internal(set) var bulkOverDirectLinks = false
    /// Whether ring payloads reach the successor through its shared-memory slots (ipc links),
    /// as the transport reported at the end of the hello round.
    public internal(set) var sharesMemory = false
    /// Where this rank's direct links listen when the group uses them for latency-bound
    /// operations, else nil: those operations then go round the ring.
    public internal(set) var directEndpoint: String?
    /// One segment, for the partial sums an exchange all-reduce receives before adding them.
    let staging: UnsafeMutableBufferPointer<Float>
    /// A block's partial sums for the exchange reduce-scatter; grows to the largest block seen.
    private var blockSums = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    /// Size in bytes of a hello payload: six numbers the ranks must agree on, then a direct
    /// endpoint, NUL-padded.
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

    /// Joins the ring over any transport (e.g. `MemoryRing(worldSize:).transport(rank:)`): runs
    /// the hello round through it (its `RingTransportSetup` side), then keeps only its
    /// `RingTransport` side. The group owns the transport and closes it.
    public init(transport: any RingTransport & RingTransportSetup, generation: UInt64, options: RingOptions = RingOptions()) throws {
        try options.validate()
        self.transport = transport
        rank = transport.rank
        worldSize = transport.worldSize
        self.generation = generation
        self.options = options
        blocks = BlockTable(worldSize: worldSize)
        let slot = worldSize > 1 ? options.smallAllReduceSlotBytes(worldSize: worldSize) / 4 : 0
        scratch = .allocate(capacity: max(1, slot * worldSize))
        scratch.initialize(repeating: 0)
        staging = .allocate(capacity: worldSize > 1 && options.directBulk ? options.segmentBytes / 4 : 1)
        staging.initialize(repeating: 0)
        do { try hello(setup: transport) } catch {
            if case RingError.protocolViolation = error {
                transport.close(lingerMilliseconds: 200)  // our hello still reaches the peer, which then says why too
            } else {
                transport.close()
            }
            throw mapped(error, timeout: options.connectTimeout)
        }
    }

    deinit {
        transport.close()  // first: no send may still read the scratch
        scratch.deallocate()
        staging.deallocate()
        blockSums.deallocate()
    }

    /// `blockSums`, grown to at least `count` floats (once per larger size, then reused).
    func blockScratch(atLeast count: Int) -> UnsafeMutablePointer<Float> {
        if blockSums.count < max(1, count) {
            blockSums.deallocate()
            blockSums = .allocate(capacity: max(1, count))
        }
        return blockSums.baseAddress!
    }

    /// How ring payloads reach the successor, for logs: "shared memory" or "messages".
    public var payloadPath: String { sharesMemory ? "shared memory" : "messages" }

    /// Messages dropped so far (malformed, or stale: of an older generation).
    public var drops: DropCounts { transport.drops }

    /// Makes the collective running on another thread (and every later call) fail promptly
    /// with `RingError.abandoned`. Call it when membership changes. Thread-safe.
    public func abandon() { transport.abandon() }

    /// Closes the group; later calls throw `.closed`. After a successful last collective, its
    /// final messages may still be queued for a peer that is waiting for them: they get up to
    /// half a second to leave (a group that failed closes at once).
    public func close() {
        if failure == nil {
            failure = "closed by its owner"
            return transport.close(lingerMilliseconds: 500)
        }
        transport.close()
    }

    /// Runs one collective: numbers it, and on failure closes the group so that no caller
    /// memory stays referenced.
    @inline(__always)
    func perform(_ type: MessageType, _ body: (inout Link) throws -> Void) throws {
        if let failure { throw RingError.closed(reason: failure) }
        var link = Link(
            transport: transport, rank: rank, worldSize: worldSize,
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
