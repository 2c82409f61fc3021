import Wire

/// One operation's view of the ring: the neighbours, and the running tags of the messages sent
/// to the successor and expected from the predecessor (`chunk` counts messages on the link, so
/// both ends number them alike as long as they run the same loops).
struct Link {
    let transport: any RingTransport
    let prev: Int
    let next: Int
    var sendTag: FrameHeader
    var receiveTag: FrameHeader
    let timeout: Double

    /// The link of `rank` of `worldSize` over `transport`, numbering messages from `tag`.
    init(transport: any RingTransport, rank r: Int, worldSize w: Int, tag: FrameHeader, timeout: Double) {
        self.transport = transport
        prev = (r + w - 1) % w
        next = (r + 1) % w
        sendTag = tag
        receiveTag = tag
        self.timeout = timeout
    }

    /// Sends `count` floats at `base` to the successor (borrowed until `releaseSends`).
    @inline(__always)
    mutating func send(_ base: UnsafePointer<Float>?, _ count: Int) throws {
        let bytes = UnsafeRawBufferPointer(start: base.map(UnsafeRawPointer.init), count: count &* 4)
        try transport.send(bytes, to: next, tag: sendTag, deadline: .after(seconds: timeout))
        sendTag.chunk &+= 1
    }

    /// Receives the next message (`count` floats) from the predecessor into `consume`, then
    /// forwards it to the successor if `forward`.
    @inline(__always)
    mutating func receive(_ count: Int, forward: Bool, _ consume: (UnsafeMutableRawPointer) -> Void) throws {
        let f: Forward? = forward ? Forward(peer: next, tag: sendTag) : nil
        try transport.receive(from: prev, tag: receiveTag, byteCount: count &* 4, deadline: .after(seconds: timeout), forward: f) {
            if let p = $0.baseAddress { consume(p) }
        }
        receiveTag.chunk &+= 1
        if forward { sendTag.chunk &+= 1 }
    }

    /// Sends `outCount` floats at `out` to the successor (nil: none) while receiving the next
    /// message, `inCount` floats, from the predecessor (nil `into`: none). Returns where the
    /// received floats are: `into`, or the transport's shared memory until its next call.
    @inline(__always) @discardableResult
    mutating func exchange(
        _ out: UnsafePointer<Float>?, _ outCount: Int, _ into: UnsafeMutablePointer<Float>?, _ inCount: Int
    ) throws -> UnsafePointer<Float>? {
        let got = try transport.exchange(
            UnsafeRawBufferPointer(start: out, count: outCount &* 4), to: next, tag: out == nil ? nil : sendTag,
            UnsafeMutableRawBufferPointer(start: into, count: inCount &* 4), from: prev, tag: into == nil ? nil : receiveTag,
            deadline: .after(seconds: timeout))
        if out != nil { sendTag.chunk &+= 1 }
        if into != nil { receiveTag.chunk &+= 1 }
        return got?.assumingMemoryBound(to: Float.self)
    }

    /// Waits until the transport no longer reads memory passed to `send`.
    @inline(__always)
    func releaseSends() throws {
        try transport.awaitSendsReleased(deadline: .after(seconds: timeout))
    }
}

/// Where each rank's block lies in a buffer: W + 1 offsets, allocated once per group.
final class BlockTable {
    let worldSize: Int
    private let offsets: UnsafeMutablePointer<Int>

    init(worldSize: Int) {
        self.worldSize = worldSize
        offsets = .allocate(capacity: worldSize + 1)
        offsets.initialize(repeating: 0, count: worldSize + 1)
    }

    deinit { offsets.deallocate() }

    @inline(__always) func offset(_ b: Int) -> Int { offsets[b] }
    @inline(__always) func count(_ b: Int) -> Int { offsets[b + 1] - offsets[b] }
    var total: Int { offsets[worldSize] }

    /// `count` elements in W near-equal blocks (the first `count % W` one element longer).
    func setEqual(_ count: Int) {
        let q = count / worldSize, extra = count % worldSize
        offsets[0] = 0
        for b in 0..<worldSize { offsets[b + 1] = offsets[b] + q + (b < extra ? 1 : 0) }
    }

    /// Blocks of the given sizes, in rank order.
    func set(_ counts: [Int]) throws {
        guard counts.count == worldSize else {
            throw RingError.invalidArgument("\(counts.count) counts for \(worldSize) ranks")
        }
        offsets[0] = 0
        for b in 0..<worldSize {
            guard counts[b] >= 0 else { throw RingError.invalidArgument("count \(counts[b]) of rank \(b)") }
            offsets[b + 1] = offsets[b] + counts[b]
        }
    }
}
