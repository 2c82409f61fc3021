import Basics
import CSharedMemory
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Payload slots in shared memory for one ring link between two processes on one host (the
/// `ipc://` transport). The receiving rank creates them when it binds; its predecessor attaches
/// once every rank of the group is known to be up. A payload then crosses the link as one
/// `memcpy` into a slot by the sender, read (and written) in place by the receiver, instead of
/// two copies through the kernel; the ZeroMQ message that announces it carries only the header
/// and a 16-byte descriptor, so ordering, tags, waits and deadlines stay ZeroMQ's.
///
/// Slots are handed out and given back in FIFO order: the sender takes slot `taken % slots`
/// while fewer than `slots` are outstanding (`taken − released`); the receiver consumes the
/// announcements in the order they were sent and releases each slot after use, publishing
/// `released` with a release store. When every slot is taken the sender does not wait: it sends
/// the payload inside the ZeroMQ message as usual, so a bounded pool cannot deadlock a ring step
/// that sends a whole block before receiving.
///
/// Layout of the mapping (little-endian):
///
///     offset size field
///          0    8 magic      "PCLSLOT1"
///          8    8 nonce      random, chosen by the receiver; every descriptor repeats it
///         16    4 slots
///         20    4 slotBytes
///         24    8 attached   set to 1 by the sender (the receiver then unlinks the name)
///         64    8 released   slots given back by the receiver (its own cache line)
///       4096      slot i at 4096 + i · slotBytes (slotBytes a multiple of 4096)
public final class SharedSlots {
    static let magic: UInt64 = 0x3154_4F4C_534C_4350  // "PCLSLOT1"
    static let headerBytes = 4096
    /// Size of the descriptor that replaces the payload in the ZeroMQ message: nonce (8),
    /// slot (4), byte count (4).
    static let descriptorBytes = 16

    let name: String
    let nonce: UInt64
    let slots: Int
    let slotBytes: Int
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let creator: Bool
    private var linked: Bool
    /// Sender: slots taken so far. Receiver: slots released so far.
    private var count: UInt64 = 0

    /// The shared-memory name of the slots behind an `ipc://` endpoint (stream 0's).
    public static func name(for endpoint: String) -> String { "/proclip-ring-" + FNV1a64.hex(endpoint) }

    /// Creates the slots of a link this rank receives on, replacing any left by a process that
    /// died with the same endpoint. Fails (the link then carries payloads in ZeroMQ messages)
    /// when shared memory cannot be had, e.g. a full /dev/shm.
    init(creating name: String, slots: Int, slotBytes requested: Int) throws {
        self.name = name
        creator = true
        self.slots = slots
        slotBytes = (requested + 4095) / 4096 * 4096
        mappedBytes = SharedSlots.headerBytes + slots * slotBytes
        var random = SystemRandomNumberGenerator()
        nonce = random.next()
        shm_unlink(name)
        let fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SharedSlots.error("shm_open \(name)") }
        defer { close(fd) }
        // Reserve the pages now: a sparse file on a full /dev/shm would fault (SIGBUS) later.
        let rc = posix_fallocate(fd, 0, off_t(mappedBytes))
        guard rc == 0 else {
            shm_unlink(name)
            throw RingError.transport("shared memory \(name): \(mappedBytes) bytes not available (\(String(cString: strerror(rc))))")
        }
        guard let p = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            shm_unlink(name)
            throw SharedSlots.error("mmap \(name)")
        }
        base = p
        linked = true
        base.storeBytes(of: nonce, toByteOffset: 8, as: UInt64.self)
        base.storeBytes(of: UInt32(slots), toByteOffset: 16, as: UInt32.self)
        base.storeBytes(of: UInt32(slotBytes), toByteOffset: 20, as: UInt32.self)
        proclip_store_release_u64(word(24), 0)
        proclip_store_release_u64(word(64), 0)
        proclip_store_release_u64(word(0), SharedSlots.magic)  // last: the header is complete
    }

    /// Attaches to the slots of the link this rank sends on, checking the header against the
    /// mapping's size.
    init(attaching name: String) throws {
        self.name = name
        creator = false
        linked = false
        let fd = shm_open(name, O_RDWR | O_CLOEXEC, 0)
        guard fd >= 0 else { throw SharedSlots.error("shm_open \(name)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SharedSlots.error("fstat \(name)") }
        let size = Int(st.st_size)
        guard size >= SharedSlots.headerBytes,
              let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw RingError.transport("shared memory \(name): \(size) bytes, not a slot pool")
        }
        let slots = Int(p.load(fromByteOffset: 16, as: UInt32.self))
        let slotBytes = Int(p.load(fromByteOffset: 20, as: UInt32.self))
        guard proclip_load_acquire_u64(p.assumingMemoryBound(to: UInt64.self)) == SharedSlots.magic,
              slots > 0, slotBytes > 0, slotBytes % 4096 == 0,
              SharedSlots.headerBytes + slots * slotBytes == size else {
            munmap(p, size)
            throw RingError.transport("shared memory \(name): bad header")
        }
        base = p
        mappedBytes = size
        self.slots = slots
        self.slotBytes = slotBytes
        nonce = p.load(fromByteOffset: 8, as: UInt64.self)
        count = proclip_load_acquire_u64(word(64))  // nothing outstanding: a fresh pool
        proclip_store_release_u64(word(24), 1)
    }

    deinit {
        munmap(base, mappedBytes)
        if creator && linked { shm_unlink(name) }
    }

    @inline(__always)
    private func word(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        (base + offset).assumingMemoryBound(to: UInt64.self)
    }

    @inline(__always)
    private func slot(_ i: Int) -> UnsafeMutableRawPointer { base + SharedSlots.headerBytes + i * slotBytes }

    // MARK: Sender

    /// Copies `bytes` into the next free slot and writes the descriptor that announces it into
    /// `descriptor` (16 bytes); false when the payload is too large or every slot is in use.
    @inline(__always)
    func put(_ bytes: UnsafeRawBufferPointer, descriptor: UnsafeMutableRawPointer) -> Bool {
        guard bytes.count > 0, bytes.count <= slotBytes,
              count &- proclip_load_acquire_u64(word(64)) < UInt64(slots) else { return false }
        let i = Int(count % UInt64(slots))
        memcpy(slot(i), bytes.baseAddress!, bytes.count)
        count &+= 1
        descriptor.storeBytes(of: nonce.littleEndian, toByteOffset: 0, as: UInt64.self)
        descriptor.storeBytes(of: UInt32(i).littleEndian, toByteOffset: 8, as: UInt32.self)
        descriptor.storeBytes(of: UInt32(bytes.count).littleEndian, toByteOffset: 12, as: UInt32.self)
        return true
    }

    // MARK: Receiver

    /// The payload a descriptor announces, checked: this pool's nonce, the slot due next, a size
    /// that fits. Release it with `release()` once it is no longer read.
    @inline(__always)
    func payload(_ descriptor: UnsafeRawBufferPointer) throws -> UnsafeMutableRawBufferPointer {
        guard descriptor.count == SharedSlots.descriptorBytes, let d = descriptor.baseAddress else {
            throw RingError.protocolViolation("shared-memory descriptor of \(descriptor.count) bytes")
        }
        let n = UInt64(littleEndian: d.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        let i = Int(UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let bytes = Int(UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        guard n == nonce else {
            throw RingError.protocolViolation("shared-memory descriptor for another pool than \(name) (a stale segment?)")
        }
        guard i == Int(count % UInt64(slots)), bytes <= slotBytes else {
            throw RingError.protocolViolation("shared-memory slot \(i) of \(bytes) bytes; expected slot \(count % UInt64(slots)), at most \(slotBytes) bytes")
        }
        if linked && proclip_load_acquire_u64(word(24)) == 1 {
            // The sender has mapped it: the name is no longer needed, and a crash now leaks nothing.
            shm_unlink(name)
            linked = false
        }
        return UnsafeMutableRawBufferPointer(start: slot(i), count: bytes)
    }

    /// Gives the oldest slot in use back to the sender.
    @inline(__always)
    func release() {
        count &+= 1
        proclip_store_release_u64(word(64), count)
    }

    private static func error(_ what: String) -> RingError {
        RingError.transport("\(what): \(String(cString: strerror(errno)))")
    }
}
