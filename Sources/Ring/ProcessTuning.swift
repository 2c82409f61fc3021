import CSharedMemory
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings for processes that run a ZeroMQ ring, applied once by the
/// executable's entry point (the worker, the benchmark), never from inside the library.
public enum RingProcessTuning {
    /// Keeps freed receive buffers in the heap for reuse.
    ///
    /// libzmq allocates a buffer for every large frame it receives, and the ring frees it a few
    /// microseconds later. With glibc's defaults, buffers above the (adaptive) mmap threshold
    /// are fresh mappings and a free that leaves a large top chunk trims the heap, so every
    /// segment is page-faulted in anew — about half the ring's throughput here. Fixing the mmap
    /// threshold at 64 MiB (4× the largest segment) and the trim threshold at 512 MiB makes
    /// glibc hand the same pages back: receive buffers are reused, at the cost of keeping the
    /// peak of in-flight receive buffers resident.
    public static func keepReceiveBuffersResident() {
        _ = glibcMallopt(mmapThreshold, 64 << 20)
        _ = glibcMallopt(trimThreshold, 512 << 20)
    }

    /// Binds the calling thread, and every thread it starts afterwards (ZeroMQ's I/O thread
    /// among them), to CPUs `cpus` — call it before creating the ring's listener.
    ///
    /// When several ranks share a host's CPUs, a message's hand-off between a rank's own thread
    /// and its I/O thread then stays on one CPU instead of waking a thread on another (on a
    /// virtual machine, an inter-processor interrupt and an exit each time): latency-bound
    /// collectives take about a third less time with 4 ranks on 2 CPUs.
    public static func bind(toCPUs cpus: Range<Int>) throws {
        let rc = proclip_bind_to_cpus(Int32(cpus.lowerBound), Int32(cpus.count))
        guard rc == 0 else { throw RingError.invalidArgument("cannot bind to CPUs \(cpus): \(String(cString: strerror(-rc)))") }
    }

    // <malloc.h> is not part of the Glibc module map: its two parameters, declared here.
    private static let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
    private static let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
}

@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
