import Basics
import Tensors
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// All-reduces ranges of one contiguous gradient buffer on a dedicated communication thread
/// while the caller keeps computing, fusing adjacent ranges into buckets.
///
/// Backward produces gradients layer by layer in reverse; after each layer the trainer calls
/// `submit(range)` for that layer's slice of the gradient slab. A range adjoining the pending
/// bucket joins it; the bucket is queued for the communication thread once it holds
/// `bucketBytes` (or when a range does not adjoin it, or at `finish()`). So the all-reduce of the
/// last layers overlaps the backward pass of the first ones, and each all-reduce is large
/// enough to run at bus bandwidth.
///
/// Every rank must submit the same ranges in the same order: the bucket sequence is a pure
/// function of it, so every rank runs the same all-reduces. The communication thread touches the
/// group only while a submitted bucket is being reduced: from `submit` until `finish` returns the
/// group is its own; between a `finish` and the next `submit` the caller may run other
/// collectives on it (the monitor orders the two threads' accesses). `close()` ends the thread.
/// `submit` and `finish` are called from one thread (the trainer's); they allocate nothing.
///
/// `@unchecked Sendable` (the communication thread shares it): the queue and counters are guarded
/// by `monitor`, `pending` is the caller's alone, and the group and slab change hands as above.
public final class BucketAllReducer: @unchecked Sendable {
    /// Fuse until a bucket holds this many bytes.
    public let bucketBytes: Int
    private let group: RingGroup
    private let base: UnsafeMutablePointer<Float>
    private let count: Int
    private let monitor = Monitor()
    // Guarded by `monitor`: a fixed queue of buckets, the number done, the first error.
    private let queue: UnsafeMutablePointer<Range<Int>>
    private let capacity = 4096
    private var head = 0, queued = 0, submitted = 0, completed = 0
    private var failure: RingError?
    private var stopping = false
    private var pending: Range<Int>?  // the bucket being filled (caller's thread only)
    private var thread = pthread_t()

    /// A reducer over `buffer` (the gradient slab) using `group`, which it takes over.
    public init(group: RingGroup, buffer: UnsafeMutableBufferPointer<Float>, bucketBytes: Int = 4 << 20) throws {
        guard let base = buffer.baseAddress, bucketBytes > 0 else {
            throw RingError.invalidArgument("a bucket reducer needs a buffer and a positive bucket size")
        }
        self.group = group
        self.base = base
        count = buffer.count
        self.bucketBytes = bucketBytes
        queue = .allocate(capacity: capacity)
        queue.initialize(repeating: 0..<0, count: capacity)
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let reducer = Unmanaged<BucketAllReducer>.fromOpaque(raw!).takeRetainedValue()
            reducer.serve()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<BucketAllReducer>.fromOpaque(context).release()
            throw RingError.transport("pthread_create: \(rc)")
        }
    }

    deinit { queue.deallocate() }

    /// Marks `range` of the buffer final on this rank: it will be summed over all ranks.
    public func submit(_ range: Range<Int>) throws {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw RingError.invalidArgument("range \(range) outside the buffer of \(count)")
        }
        if range.isEmpty { return }
        if let p = pending {
            if range.upperBound == p.lowerBound {
                pending = range.lowerBound..<p.upperBound
            } else if range.lowerBound == p.upperBound {
                pending = p.lowerBound..<range.upperBound
            } else {
                try enqueue(p)
                pending = range
            }
        } else {
            pending = range
        }
        if let p = pending, p.count * 4 >= bucketBytes {
            try enqueue(p)
            pending = nil
        }
    }

    /// Queues what is pending and waits until every submitted range is summed; rethrows the
    /// first failure. Gives up when no bucket completes within the group's timeout.
    public func finish() throws {
        if let p = pending {
            try enqueue(p)
            pending = nil
        }
        monitor.lock()
        defer { monitor.unlock() }
        var lastProgress = Deadline.now(), seen = completed
        while completed < submitted && failure == nil {
            if completed != seen {
                seen = completed
                lastProgress = Deadline.now()
            }
            let deadline = Deadline(nanoseconds: lastProgress.nanoseconds + UInt64((group.options.timeout + 1) * 1e9))
            if !monitor.wait(until: deadline), completed == seen {
                throw RingError.timedOut(waitingFor: "bucket \(completed + 1) of \(submitted)", seconds: group.options.timeout)
            }
        }
        if let failure { throw failure }
    }

    /// Stops the communication thread (after the queued buckets) and hands the group back.
    public func close() {
        monitor.withLock {
            stopping = true
            monitor.broadcast()
        }
        pthread_join(thread, nil)
    }

    private func enqueue(_ range: Range<Int>) throws {
        try monitor.withLock {
            if let failure { throw failure }
            guard queued < capacity else { throw RingError.invalidArgument("more than \(capacity) buckets queued") }
            queue[(head + queued) % capacity] = range
            queued += 1
            submitted += 1
            monitor.broadcast()
        }
    }

    /// The communication thread: all-reduces queued buckets in order.
    private func serve() {
        while true {
            monitor.lock()
            while queued == 0 && !stopping { _ = monitor.wait(until: .after(seconds: 3600)) }
            if queued == 0 {
                monitor.unlock()
                return
            }
            let range = queue[head]
            let failed = failure != nil
            monitor.unlock()
            var outcome: RingError?
            if !failed {  // after a failure the group is closed: the rest are only counted off
                do {
                    try group.allReduce(UnsafeMutableBufferPointer(start: base + range.lowerBound, count: range.count))
                } catch {
                    outcome = error as? RingError ?? .transport("\(error)")
                }
            }
            monitor.withLock {
                head = (head + 1) % capacity
                queued -= 1
                completed += 1
                if failure == nil { failure = outcome }
                monitor.broadcast()
            }
        }
    }
}
