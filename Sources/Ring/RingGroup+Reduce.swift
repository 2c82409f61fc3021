import Wire
#if canImport(Glibc)
import Glibc
#endif

extension RingGroup {
    /// Sums `buffer` element-wise over all ranks, in place; every rank ends with the same bits.
    ///
    /// Algorithm (the bandwidth-optimal ring): reduce-scatter, then all-gather. The buffer is cut
    /// into W near-equal blocks, block b belonging to rank b, and each block into segments of
    /// `options.segmentBytes`.
    /// - Reduce-scatter, steps s = 0…W−2: rank r receives from r−1 the partial sum of block
    ///   (r−s−2) mod W, adds its own values into the received segment in place and forwards it
    ///   to r+1. At the last step the block is r's own and the sum is complete: it is stored
    ///   into `buffer` and forwarded as the first all-gather message.
    /// - All-gather, steps s = 0…W−2: rank r receives the final block (r−s−1) mod W, copies it
    ///   into `buffer` and forwards it (except at the last step).
    /// Segments pipeline: a segment moves on as soon as it has been added, so one rank's adding
    /// overlaps its neighbours' sending and receiving. Only the first step sends from `buffer`
    /// (zero-copy); everything after forwards received messages without copying.
    ///
    /// Block b is summed in the fixed order x[b+1] + x[b+2] + … + x[b], so results are
    /// deterministic for a given world size.
    ///
    /// Cost model, for S bytes over W ranks, per-hop latency α, per-message overhead o, link
    /// time per byte β (the slowest of sending, receiving and adding, as they overlap), and
    /// k = ⌈S / (W · segmentBytes)⌉ segments per block:
    ///
    ///     T(S, W) ≈ 2(W−1)·α + 2(W−1)·k·o + 2·(W−1)/W · S·β
    ///
    /// Each rank sends and receives 2(W−1)/W · S bytes, so `busbw = S/T · 2(W−1)/W` tends to
    /// 1/β for large S at any W, while the latency term grows linearly in W (a hierarchical
    /// ring keeps W small per level).
    ///
    /// Small buffers (`options.smallAllReduceBytes`, W·S within the group's scratch) are
    /// latency-bound and take fewer hops: every rank's buffer is gathered into the scratch, and
    /// every rank sums the W copies in rank order 0…W−1 (the same bits everywhere). With direct
    /// connections (W ≤ `options.directMaxWorld`) each rank sends its buffer straight to every
    /// other, one hop — or, for a power-of-two W, swaps partial sums in log2(W) rounds of
    /// recursive doubling (`doubleAndSum`: fewer messages); otherwise a ring all-gather, W−1 hops:
    ///
    ///     T_direct(S, W) ≈ α + (W−1)·S·β + W·S·γ        (γ: time per byte added)
    ///     T_gather(S, W) ≈ (W−1)·(α + S·β) + W·S·γ
    ///
    /// The ring gather beats the two-phase ring while S·β·(1 − 2/W) < α, independent of W; the
    /// scratch grows with W, hence its 4 MiB cap.
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let n = buffer.count
        if worldSize > 1, n > 0, n * 4 <= options.smallAllReduceBytes, n * worldSize <= scratch.count {
            return try perform(.ringAllReduce) { link in
                if direct && worldSize & (worldSize - 1) == 0 && worldSize > 2 {
                    try doubleAndSum(buffer, &link)
                } else if direct {
                    try exchangeAndSum(buffer, &link)
                } else {
                    try gatherAndSum(buffer, &link)
                }
            }
        }
        if bulkOverDirectLinks {
            return try perform(.ringAllReduce) { link in
                guard worldSize > 1, n > 0, let x = buffer.baseAddress else { return }
                try exchangeAllReduce(x, n, &link)
            }
        }
        try perform(.ringAllReduce) { link in
            guard worldSize > 1, buffer.count > 0, let x = buffer.baseAddress else { return }
            let w = worldSize, r = rank, seg = segmentFloats
            blocks.setEqual(buffer.count)
            // The complete sum of block r is stored and travels on as the first all-gather message.
            try reduceScatterSteps(UnsafePointer(x), &link, forwardLast: true) { message, i, n in
                Kernels.accumulateAndStore(message, x + blocks.offset(r) + i, n)
            }
            // The first step lent block r−1 to the transport; all-gather overwrites it first.
            try link.releaseSends()
            for s in 0..<(w - 1) {
                let b = (r + w - s - 1) % w
                let base = x + blocks.offset(b), count = blocks.count(b)
                var i = 0
                while i < count {
                    let n = min(seg, count - i), out = base + i
                    try link.receive(n, forward: s < w - 2) { memcpy(out, $0, n &* 4) }
                    i += n
                }
            }
        }
    }

    /// The two-phase ring as lock-step exchanges with the neighbours over the direct links
    /// (`bulkOverDirectLinks`): the same blocks, segments, messages and order of additions as
    /// above, so the same bits, but each rank reads its predecessor's segments straight into
    /// memory — partial sums into `staging`, then added into `buffer` in place; final blocks
    /// straight into `buffer` — on its own thread. Over shared memory (ipc) the payloads are
    /// read from the slot they arrived in: partial sums added from there, final blocks copied
    /// once. Steps 0…W−2 reduce, the rest gather (see `exchangeSteps`).
    /// Cost as above, with o the cost of a system call rather than of a ZeroMQ hand-off, and
    /// one pass over the data fewer in the all-gather.
    private func exchangeAllReduce(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ link: inout Link) throws {
        blocks.setEqual(n)
        try exchangeInPlace(x, 0..<(2 * worldSize - 2), &link)
    }

    /// Steps `steps` of the exchange ring on `x` itself (blocks in `blocks`): steps below W−1
    /// add what they receive into `x`, the others store it there.
    func exchangeInPlace(_ x: UnsafeMutablePointer<Float>, _ steps: Range<Int>, _ link: inout Link) throws {
        let w = worldSize, partial = staging.baseAddress!
        try exchangeSteps(
            steps, &link,
            source: { _, b, i in UnsafePointer(x + blocks.offset(b) + i) },
            landing: { t, b, i in t < w - 1 ? partial : x + blocks.offset(b) + i },
            arrived: { t, b, i, got, k in
                let target = x + blocks.offset(b) + i
                if t < w - 1 {
                    Kernels.add(got, into: target, k)
                } else if got != UnsafePointer(target) {
                    memcpy(target, got, k &* 4)
                }
            })
    }

    /// The exchange ring over the blocks in `blocks`: at step t rank r sends block (r−1−t) mod W
    /// and receives block (r−2−t) mod W, which it sends on at step t+1. Segment i of both blocks
    /// travel in one exchange — sending and receiving overlap; handling a segment overlaps the
    /// neighbours' writes into the kernel's buffers — from `source(t, block, i)` and into
    /// `landing(t, block, i)`; the received floats, wherever the transport left them, then go
    /// to `arrived(t, block, i, floats, count)`. Ends with no shared-memory slot held.
    @inline(__always)
    private func exchangeSteps(
        _ steps: Range<Int>, _ link: inout Link,
        source: (Int, Int, Int) -> UnsafePointer<Float>,
        landing: (Int, Int, Int) -> UnsafeMutablePointer<Float>,
        arrived: (Int, Int, Int, UnsafePointer<Float>, Int) -> Void
    ) throws {
        let w = worldSize, r = rank, seg = segmentFloats
        for t in steps {
            let out = (r + 2 * w - 1 - t) % w, into = (r + 2 * w - 2 - t) % w
            let outCount = blocks.count(out), inCount = blocks.count(into)
            var i = 0
            while i < max(outCount, inCount) {
                let m = min(seg, max(0, outCount - i)), k = min(seg, max(0, inCount - i))
                let got = try link.exchange(m > 0 ? source(t, out, i) : nil, m, k > 0 ? landing(t, into, i) : nil, k)
                if let got { arrived(t, into, i, got, k) }
                i += seg
            }
        }
        try link.releaseSends()  // gives back a shared-memory slot still held
    }

    /// The latency-bound all-reduce for a power-of-two W over direct connections: recursive
    /// doubling. In round k each rank swaps its partial sum with rank `r ^ 2^k` and adds, so
    /// after log2(W) rounds every rank holds the total. Partners add the same two values
    /// (a + b = b + a exactly), so every rank ends with the same bits. Fewer messages than the
    /// all-to-all (W·log2 W instead of W·(W−1)), which outweighs the extra round: over the
    /// direct links, 4 ranks on 2 cores, 35–40 µs against 48 µs at 4 KiB and 111–122 µs
    /// against 164–178 µs at 64 KiB.
    ///
    ///     T_doubling(S, W) ≈ log2(W)·(α + S·β + S·γ)
    private func doubleAndSum(_ buffer: UnsafeMutableBufferPointer<Float>, _ link: inout Link) throws {
        let w = worldSize, r = rank, n = buffer.count, timeout = options.timeout
        let x = buffer.baseAddress!, outgoing = scratch.baseAddress!, incoming = scratch.baseAddress! + n
        var tag = link.sendTag
        tag.type = .ringDirectReduce
        var mask = 1, round = 0
        while mask < w {
            let partner = r ^ mask
            try link.releaseSends()  // the previous round's message may still be read from `outgoing`
            memcpy(outgoing, x, n &* 4)
            tag.chunk = UInt32(round * w + r)
            try transport.send(UnsafeRawBufferPointer(start: outgoing, count: n &* 4), to: partner, tag: tag, deadline: .after(seconds: timeout))
            tag.chunk = UInt32(round * w + partner)
            try transport.receive(from: partner, tag: tag, byteCount: n &* 4, deadline: .after(seconds: timeout), forward: nil) {
                memcpy(incoming, $0.baseAddress!, n &* 4)
            }
            Kernels.add(incoming, into: x, n)
            mask <<= 1
            round += 1
        }
        try link.releaseSends()
    }

    /// The latency-bound all-reduce over direct connections: send this rank's buffer to every
    /// other rank, receive theirs into the scratch, sum in rank order.
    private func exchangeAndSum(_ buffer: UnsafeMutableBufferPointer<Float>, _ link: inout Link) throws {
        let w = worldSize, r = rank, n = buffer.count, timeout = options.timeout
        let x = buffer.baseAddress!, slots = scratch.baseAddress!
        memcpy(slots + r * n, x, n &* 4)
        var tag = link.sendTag
        tag.type = .ringDirectReduce
        tag.chunk = UInt32(r)
        let mine = UnsafeRawBufferPointer(start: slots + r * n, count: n &* 4)
        for k in 1..<w { try transport.send(mine, to: (r + k) % w, tag: tag, deadline: .after(seconds: timeout)) }
        for k in 1..<w {
            let peer = (r + w - k) % w, dst = slots + peer * n
            tag.chunk = UInt32(peer)
            try transport.receive(from: peer, tag: tag, byteCount: n &* 4, deadline: .after(seconds: timeout), forward: nil) {
                memcpy(dst, $0.baseAddress!, n &* 4)
            }
        }
        memcpy(x, slots, n &* 4)
        for b in 1..<w { Kernels.add(slots + b * n, into: x, n) }
        try link.releaseSends()  // this rank's slot is rewritten by the next call
    }

    /// The latency-bound all-reduce over the ring: gather every rank's buffer into the scratch,
    /// then sum the copies in rank order.
    private func gatherAndSum(_ buffer: UnsafeMutableBufferPointer<Float>, _ link: inout Link) throws {
        let w = worldSize, r = rank, n = buffer.count, seg = segmentFloats
        let x = buffer.baseAddress!, slots = scratch.baseAddress!
        memcpy(slots + r * n, x, n &* 4)
        var i = 0
        while i < n {
            let m = min(seg, n - i)
            try link.send(slots + r * n + i, m)
            i += m
        }
        for s in 0..<(w - 1) {
            let b = (r + w - s - 1) % w
            var i = 0
            while i < n {
                let m = min(seg, n - i), dst = slots + b * n + i
                try link.receive(m, forward: s < w - 2) { memcpy(dst, $0, m &* 4) }
                i += m
            }
        }
        memcpy(x, slots, n &* 4)
        for b in 1..<w { Kernels.add(slots + b * n, into: x, n) }
        try link.releaseSends()  // this rank's slot is rewritten by the next call
    }

    /// Sums block by block over all ranks and leaves rank r with the sum of block r.
    ///
    /// `input` holds all W blocks in rank order (block b has `counts[b]` elements; counts may
    /// differ and may be 0); `output` receives this rank's block, summed (`counts[rank]`
    /// elements). Same on every rank: `counts`. `input` is only read.
    ///
    /// Algorithm: the reduce-scatter half of `allReduce` with blocks of the given sizes (as
    /// exchanges over the direct links with `RingOptions.directBulk`); the last step writes
    /// `output[i] = partial[i] + input[i]`.
    /// Cost: T ≈ (W−1)·α + (W−1)·k·o + (S − S_r)·β, with S_r this rank's block, that is
    /// (W−1)/W · S·β for equal blocks.
    public func reduceScatter(
        input: UnsafeBufferPointer<Float>, counts: [Int], into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try blocks.set(counts)
        try require(input.count == blocks.total, "input has \(input.count) elements, counts sum to \(blocks.total)")
        try require(output.count == counts[rank], "output has \(output.count) elements, counts[\(rank)] = \(counts[rank])")
        try perform(.ringReduceScatter) { link in
            guard let x = input.baseAddress else { return }
            let w = worldSize, r = rank
            if w == 1 {
                if let out = output.baseAddress, out != UnsafeMutablePointer(mutating: x) { memmove(out, x, output.count &* 4) }
                return
            }
            let out = output.baseAddress ?? UnsafeMutablePointer(mutating: x)  // nil only for an empty block: never written
            if bulkOverDirectLinks { return try exchangeReduceScatter(x, into: out, &link) }
            try reduceScatterSteps(x, &link, forwardLast: false) { message, i, n in
                Kernels.sum(message, x + blocks.offset(r) + i, into: out + i, n)
            }
            try link.releaseSends()
        }
    }

    /// `reduceScatter` as exchanges (`bulkOverDirectLinks`): the reduce steps of
    /// `exchangeSteps`, with the partial sums kept in a block of scratch (`input` is read-only)
    /// — each segment is rewritten right after the exchange that sent it — and the last step
    /// writing `output`. Same messages and order of additions as round the ZeroMQ ring.
    private func exchangeReduceScatter(_ x: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, _ link: inout Link) throws {
        let w = worldSize, partial = staging.baseAddress!
        var largest = 0
        for b in 0..<w { largest = max(largest, blocks.count(b)) }
        let sums = blockScratch(atLeast: largest)
        try exchangeSteps(
            0..<(w - 1), &link,
            source: { t, b, i in t == 0 ? x + blocks.offset(b) + i : UnsafePointer(sums + i) },
            landing: { _, _, _ in partial },
            arrived: { t, b, i, got, k in Kernels.sum(got, x + blocks.offset(b) + i, into: t == w - 2 ? output + i : sums + i, k) })
    }

    /// The reduce-scatter half of the ring over the blocks in `blocks`: send this rank's values
    /// of block r−1 (the start of its sum), then for W−1 steps receive the partial sum of block
    /// (r−s−2) mod W, add this rank's values into it in place and forward it. At the last step
    /// the block is r's own and the sum complete: each segment goes to `finish` (the message,
    /// the segment's offset in the block, its length), and is forwarded if `forwardLast`.
    @inline(__always)
    private func reduceScatterSteps(
        _ x: UnsafePointer<Float>, _ link: inout Link, forwardLast: Bool,
        finish: (UnsafeMutableRawPointer, Int, Int) -> Void
    ) throws {
        let w = worldSize, r = rank, seg = segmentFloats
        let first = (r + w - 1) % w
        var i = 0
        while i < blocks.count(first) {
            let n = min(seg, blocks.count(first) - i)
            try link.send(x + blocks.offset(first) + i, n)
            i += n
        }
        for s in 0..<(w - 1) {
            let b = (r + 2 * w - s - 2) % w
            let base = x + blocks.offset(b), count = blocks.count(b)
            var i = 0
            while i < count {
                let n = min(seg, count - i), offset = i
                if s < w - 2 {
                    let local = base + i
                    try link.receive(n, forward: true) { Kernels.accumulate($0, local, n) }
                } else {
                    try link.receive(n, forward: forwardLast) { finish($0, offset, n) }
                }
                i += n
            }
        }
    }
}
