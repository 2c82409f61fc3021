/// Tunables of a group. Every rank of a group must use the same `segmentBytes`, `streams`,
/// `smallAllReduceBytes`, `directMaxWorld` and `directBulk` (checked when the group connects);
/// the rest may differ.
public struct RingOptions: Sendable, Equatable {
    /// Longest wait for any one message, in seconds. A dead or stuck peer is reported this long
    /// after the last message it sent.
    public var timeout: Double = 30
    /// Longest wait for every rank to connect when the group is created, in seconds.
    public var connectTimeout: Double = 60
    /// Largest message payload. Blocks are cut into segments of this size so that sending,
    /// receiving and adding overlap; kept well below 32 MiB, where every received message
    /// would be a fresh `mmap` that is page-faulted in.
    public var segmentBytes: Int = 512 << 10
    /// All-reduces of at most this many bytes use the latency-bound algorithm (W−1 hops instead
    /// of 2(W−1), or log2 W rounds over direct links, see `RingGroup.allReduce`); the group
    /// keeps W times this size (at most 4 MiB) of scratch for it. 0 turns it off. Over the
    /// direct links, 4 ranks on 2 cores: 128 KiB in 226 µs against 690 µs round the ring,
    /// 256 KiB 474 against 824 µs; at 1 MiB the ring is faster (2.1 against 3.6 ms).
    public var smallAllReduceBytes: Int = 256 << 10
    /// Groups of up to this many ranks also connect every rank to every other over plain stream
    /// sockets (`DirectLinks`), and run latency-bound operations (small all-reduces, barriers)
    /// there: one or log2 W hops instead of W−1, each without ZeroMQ's I/O-thread hand-offs
    /// (and large all-reduces too, see `directBulk`).
    /// 0: ring connections only, all traffic through ZeroMQ (so that a ZeroMQ security
    /// mechanism such as CURVE, once configured on the ring, covers every message). Connections
    /// grow as W², hence the limit; larger groups connect each rank to its ring neighbours only,
    /// for the bulk exchanges (`directBulk`).
    public var directMaxWorld: Int = 16
    /// Whether large all-reduces (and all-gathers, reduce-scatters) also run over the direct
    /// links (when the group has them): each rank reads its predecessor's segments straight
    /// into the buffer and writes its own from it, on its own thread, instead of through
    /// ZeroMQ's I/O thread and receive buffers (between ranks joined over `ipc://`, payloads go through the
    /// shared-memory slots and the link carries their descriptors). 4 ranks on 2 cores, tcp:
    /// 16 MiB in 27–34 against 42–49 ms, 64 MiB in 138–183 against 164–202 ms
    /// (BENCHMARKS.md). false: they go round the ZeroMQ ring.
    public var directBulk: Bool = true
    /// TCP connections (and ZeroMQ I/O threads) per ring neighbour; segments go round-robin.
    public var streams: Int = 1
    /// Kernel socket buffer size in bytes for each connection (−1: the OS default).
    public var kernelBufferBytes: Int = -1
    /// How long a receive keeps polling (yielding the CPU between polls) before it sleeps in
    /// `zmq_poll` (or `poll`, on a direct link), in microseconds. Spinning saves a wake-up per message on a busy ring; 0
    /// sleeps at once.
    public var spinMicroseconds: Int = 50
    /// Shared-memory payload slots (of `segmentBytes` each) per ring link between ranks joined
    /// over `ipc://` (one host); payloads then cross the link in one copy instead of two through
    /// the kernel (see `SharedSlots`). 0: payloads always travel inside ZeroMQ messages.
    /// Slots are used in turn, so the pool is memory the ring cycles through: the exchange
    /// all-reduce (`directBulk`) holds at most two at once, and 4 keep its working set in cache
    /// (4 ranks on 2 cores, 16 MiB: 15–16 ms against 20 ms with 32 slots, 64 MiB: 49 against
    /// 75 ms). Round the ZeroMQ ring, whose first step sends a whole block before receiving,
    /// 32 do better (25–28 against 34–36 ms at 16 MiB).
    public var sharedMemorySlots: Int = 4
    /// ZMTP heartbeat interval in milliseconds: a connection silent for three intervals is
    /// dropped by ZeroMQ (0: no heartbeats).
    public var heartbeatMilliseconds: Int = 1000

    /// The defaults.
    public init() {}

    /// Bytes of a rank's slot in the scratch of a group of `worldSize` for the latency-bound
    /// all-reduce (W slots of at most 4 MiB in all), a multiple of 4: the largest buffer that
    /// takes that path, and the largest direct message.
    public func smallAllReduceSlotBytes(worldSize: Int) -> Int {
        min(smallAllReduceBytes, (4 << 20) / max(1, worldSize)) & ~3
    }

    /// Throws `.invalidArgument` for values out of range.
    public func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw RingError.invalidArgument("timeout \(timeout) s") }
        guard connectTimeout > 0, connectTimeout.isFinite else { throw RingError.invalidArgument("connectTimeout \(connectTimeout) s") }
        guard segmentBytes >= 4, segmentBytes <= 16 << 20, segmentBytes % 4 == 0 else {
            throw RingError.invalidArgument("segmentBytes \(segmentBytes): a multiple of 4 in 4…16 MiB")
        }
        guard (1...16).contains(streams) else { throw RingError.invalidArgument("streams \(streams) not in 1…16") }
        guard directMaxWorld >= 0 else { throw RingError.invalidArgument("directMaxWorld \(directMaxWorld)") }
        guard smallAllReduceBytes >= 0 else { throw RingError.invalidArgument("smallAllReduceBytes \(smallAllReduceBytes)") }
        guard (0...100_000).contains(spinMicroseconds) else { throw RingError.invalidArgument("spin \(spinMicroseconds) µs") }
        guard (0...1024).contains(sharedMemorySlots) else { throw RingError.invalidArgument("sharedMemorySlots \(sharedMemorySlots) not in 0…1024") }
        guard heartbeatMilliseconds >= 0 else { throw RingError.invalidArgument("heartbeat \(heartbeatMilliseconds) ms") }
    }
}
