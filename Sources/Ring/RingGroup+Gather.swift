import Wire
#if canImport(Glibc)
import Glibc
#endif

extension RingGroup {
    /// Concatenates every rank's `local` values, in rank order, into `output` on every rank.
    ///
    /// Rank b contributes `counts[b]` elements (counts may differ and may be 0; the same
    /// `counts` on every rank); `output` holds their sum. `local` may be this rank's block of
    /// `output` itself.
    ///
    /// Algorithm: ring all-gather. Step 0 sends `local` (zero-copy); in steps s = 0…W−2 rank r
    /// receives block (r−s−1) mod W, copies it into `output` and forwards the received message
    /// unchanged (except at the last step). Blocks are cut into segments, which pipeline. Over
    /// the direct links (`RingOptions.directBulk`) the same steps run as exchanges that read
    /// each block straight into `output` and send it on from there.
    /// Cost: T ≈ (W−1)·α + (W−1)·k·o + (S − S_r)·β, for S output bytes and S_r this rank's
    /// share: (W−1)/W · S·β with equal shares.
    public func allGather(
        local: UnsafeBufferPointer<Float>, counts: [Int], into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try blocks.set(counts)
        try require(local.count == counts[rank], "local has \(local.count) elements, counts[\(rank)] = \(counts[rank])")
        try require(output.count == blocks.total, "output has \(output.count) elements, counts sum to \(blocks.total)")
        try perform(.ringAllGather) { link in
            guard let out = output.baseAddress else { return }
            let w = worldSize, r = rank, seg = segmentFloats
            if let src = local.baseAddress, out + blocks.offset(r) != UnsafeMutablePointer(mutating: src) {
                memmove(out + blocks.offset(r), src, local.count &* 4)
            }
            if w == 1 { return }
            if bulkOverDirectLinks {
                // The all-gather half of the exchange all-reduce: blocks read straight into `output`.
                return try exchangeInPlace(out, (w - 1)..<(2 * w - 2), &link)
            }
            var i = 0
            while i < local.count {
                let n = min(seg, local.count - i)
                try link.send(local.baseAddress! + i, n)
                i += n
            }
            for s in 0..<(w - 1) {
                let b = (r + w - s - 1) % w
                let base = out + blocks.offset(b), count = blocks.count(b)
                var i = 0
                while i < count {
                    let n = min(seg, count - i), dst = base + i
                    try link.receive(n, forward: s < w - 2) { memcpy(dst, $0, n &* 4) }
                    i += n
                }
            }
            try link.releaseSends()
        }
    }

    /// Copies `buffer` of rank `root` into `buffer` on every rank (same size on every rank).
    ///
    /// Algorithm: a pipelined chain along the ring from `root`: each rank copies every received
    /// segment out and forwards it, so segments stream through all ranks at once.
    /// Cost: T ≈ (W−2+k')·(α + o + s·β) for k' segments of s bytes, that is about
    /// (W−1)·α + S·β when k' ≫ W.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        try require((0..<worldSize).contains(root), "root \(root) outside 0..<\(worldSize)")
        try perform(.ringBroadcast) { link in
            guard worldSize > 1, let x = buffer.baseAddress else { return }
            let seg = segmentFloats, count = buffer.count
            var i = 0
            if rank == root {
                while i < count {
                    let n = min(seg, count - i)
                    try link.send(x + i, n)
                    i += n
                }
                try link.releaseSends()
            } else {
                let forward = link.next != root
                while i < count {
                    let n = min(seg, count - i), dst = x + i
                    try link.receive(n, forward: forward) { memcpy(dst, $0, n &* 4) }
                    i += n
                }
            }
        }
    }

    /// Returns once every rank has entered the barrier.
    ///
    /// Algorithm: with direct connections, every rank sends an empty message to every other and
    /// waits for theirs (one hop, α + (W−1)·o). Otherwise an all-gather of empty messages round
    /// the ring: in W−1 steps each rank forwards a token, so after step s it knows that ranks
    /// r−1…r−s−1 have arrived. Cost: (W−1)·α.
    public func barrier() throws {
        try perform(.ringBarrier) { link in
            let w = worldSize
            guard w > 1 else { return }
            if direct {
                let timeout = options.timeout
                return try directBarrier(link.sendTag, deadline: { .after(seconds: timeout) })
            }
            try link.send(nil, 0)
            for s in 0..<(w - 1) { try link.receive(0, forward: s < w - 2) { _ in } }
        }
    }

    /// Sends `buffer` of rank `sender` to its ring successor, which receives it into its own
    /// `buffer` (same size); then an empty acknowledgement travels on round the ring back to
    /// `sender`, so every rank returns after the data arrived. Measures the transport's
    /// point-to-point throughput with the same segments and the same path as the all-reduce
    /// (`proclip bench collectives`): exchanges over the direct links when the group runs its
    /// bulk all-reduce there, else zero-copy sends and copies out of ZeroMQ's messages.
    public func pointToPoint(_ buffer: UnsafeMutableBufferPointer<Float>, from sender: Int) throws {
        try require((0..<worldSize).contains(sender), "sender \(sender) outside 0..<\(worldSize)")
        try perform(.ringPointToPoint) { link in
            let w = worldSize
            guard w > 1, let x = buffer.baseAddress else { return }
            let seg = segmentFloats, count = buffer.count
            let receiver = (sender + 1) % w
            var i = 0
            if rank == sender {
                while i < count {
                    let n = min(seg, count - i)
                    if bulkOverDirectLinks { try link.exchange(x + i, n, nil, 0) } else { try link.send(x + i, n) }
                    i += n
                }
                try link.receive(0, forward: false) { _ in }  // the acknowledgement
                try link.releaseSends()
            } else if rank == receiver {
                while i < count {
                    let n = min(seg, count - i), dst = x + i
                    if bulkOverDirectLinks {
                        if let got = try link.exchange(nil, 0, dst, n), got != UnsafePointer(dst) { memcpy(dst, got, n &* 4) }
                    } else {
                        try link.receive(n, forward: false) { memcpy(dst, $0, n &* 4) }
                    }
                    i += n
                }
                try link.releaseSends()
                try link.send(nil, 0)
            } else {
                try link.receive(0, forward: true) { _ in }
            }
        }
    }
}
