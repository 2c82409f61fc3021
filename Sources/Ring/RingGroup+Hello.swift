import Basics
import Wire
#if canImport(Glibc)
import Glibc
#endif

extension RingGroup {
    /// Every rank sends a hello on each stream and checks its predecessor's; with direct
    /// connections, the hellos then go round the ring so every rank learns every direct
    /// endpoint, and one direct barrier proves the connections; without, one token per rank goes
    /// round the ring. Either way every rank has then heard from every other, and the transport
    /// is told (`setup.peersReady()`); the capabilities it returns are read here, once. Groups
    /// too large for a full mesh of direct links (more than `directMaxWorld`, when that is not
    /// 0) still connect each rank to its ring neighbours for the bulk exchanges (`directBulk`).
    /// Messages go through `transport`; `setup` is the same object's set-up side.
    func hello(setup: any RingTransportSetup) throws {
        if worldSize == 1 { return }
        let w = worldSize, prev = (rank + w - 1) % w, next = (rank + 1) % w
        let deadline = Deadline.after(seconds: options.connectTimeout)
        let offered = setup.directEndpoint
        let useDirect = w <= options.directMaxWorld && offered != nil
        let neighboursOnly = !useDirect && options.directMaxWorld > 0 && options.directBulk && offered != nil
        let endpoint = useDirect || neighboursOnly ? offered! : ""
        guard endpoint.utf8.count <= RingGroup.helloBytes - 24 else {
            throw RingError.invalidArgument("direct endpoint \(endpoint) longer than \(RingGroup.helloBytes - 24) bytes")
        }
        // What every rank must agree on: rank order, world, and what picks messages and algorithms.
        func config(_ r: Int) -> [UInt32] {
            [UInt32(r), UInt32(w), UInt32(options.streams), UInt32(options.segmentBytes),
             UInt32(options.smallAllReduceBytes), useDirect ? (options.directBulk ? 2 : 1) : neighboursOnly ? 3 : 0]
        }
        // Records of every rank: 6 little-endian UInt32s, then the endpoint.
        var records = [UInt8](repeating: 0, count: w * RingGroup.helloBytes)
        records.withUnsafeMutableBytes { raw in
            let mine = raw.baseAddress! + rank * RingGroup.helloBytes
            for (i, v) in config(rank).enumerated() { mine.storeBytes(of: v.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            for (i, byte) in endpoint.utf8.enumerated() { mine.storeBytes(of: byte, toByteOffset: 24 + i, as: UInt8.self) }
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
            let rounds = options.streams + (useDirect || neighboursOnly ? w - 2 : 0)
            for k in 0..<rounds {
                let from = k < options.streams ? prev : (rank + w - 2 - (k - options.streams)) % w
                tag.chunk = UInt32(k)
                let forward = k >= options.streams - 1 && k < rounds - 1 && (useDirect || neighboursOnly)
                    ? Forward(peer: next, tag: FrameHeader(type: .ringHello, generation: generation, step: .max, collective: 0, chunk: UInt32(k + 1)))
                    : nil
                try transport.receive(from: prev, tag: tag, byteCount: RingGroup.helloBytes, deadline: deadline, forward: forward) { p in
                    memcpy(base + from * RingGroup.helloBytes, p.baseAddress!, RingGroup.helloBytes)
                }
                let got = (0..<6).map { UInt32(littleEndian: (base + from * RingGroup.helloBytes).loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
                guard got == config(from) else {
                    throw RingError.protocolViolation(
                        "hello from rank \(from): (rank, world, streams, segment bytes, small all-reduce bytes, direct links: 0 none, 1 small operations, 2 also bulk, 3 bulk between neighbours) = \(got), expected \(config(from))")
                }
            }
        }
        try transport.awaitSendsReleased(deadline: deadline)
        guard useDirect || neighboursOnly else {
            // A token from every rank goes once round the ring: when this rank has seen them
            // all, every rank is up (its listener bound), so shared memory may be attached.
            var t = FrameHeader(type: .ringHello, generation: generation, step: .max, collective: 1, chunk: 0)
            try transport.send(UnsafeRawBufferPointer(start: nil, count: 0), to: next, tag: t, deadline: deadline)
            for k in 0..<(w - 1) {
                t.chunk = UInt32(k)
                let forward = k < w - 2
                    ? Forward(peer: next, tag: FrameHeader(type: .ringHello, generation: generation, step: .max, collective: 1, chunk: UInt32(k + 1)))
                    : nil
                try transport.receive(from: prev, tag: t, byteCount: 0, deadline: deadline, forward: forward) { _ in }
            }
            sharesMemory = setup.peersReady().sharesMemory
            return
        }
        let endpoints = (0..<w).map { r in
            records.withUnsafeBytes { raw in
                let field = raw[(r * RingGroup.helloBytes + 24)..<((r + 1) * RingGroup.helloBytes)]
                return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        try setup.connectDirect(endpoints, generation: generation, ringNeighboursOnly: neighboursOnly, deadline: deadline)
        if useDirect {
            try directBarrier(FrameHeader(type: .ringDirectBarrier, generation: generation, step: .max, collective: 0, chunk: 0), deadline: { deadline })
            direct = true
            directEndpoint = endpoint
        }
        let capabilities = setup.peersReady()  // every rank's record (or barrier message) has arrived: all are up
        bulkOverDirectLinks = options.directBulk && capabilities.exchangesDirectly
        sharesMemory = capabilities.sharesMemory
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
}
