#if _endian(big)
#error("the wire format and the ring's float payloads are little-endian; big-endian hosts are not supported")
#endif

/// What a message is, as named in its header. Each module that speaks over Wire defines its own
/// types as static members (the ring uses 0x10…0x1F, the control plane 0x20…0x3F).
public struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public var description: String { "type 0x" + String(rawValue, radix: 16) }
}

/// The fixed header that starts every message: a message is exactly two ZeroMQ frames, this
/// header (32 bytes) and a payload (0 or more bytes, size-limited per type).
///
/// Layout, little-endian:
///
///     offset size field
///          0    4 magic       "PCLW"
///          4    1 version     1
///          5    1 type        MessageType
///          6    2 flags       0 (reserved)
///          8    8 generation  membership epoch; traffic of another generation is not ours
///         16    8 step        training step the message belongs to
///         24    4 collective  sequence number of the operation within the step
///         28    4 chunk       sequence number of the message within the operation
///
/// 32 bytes keeps the header inside a ZeroMQ message object (no heap allocation per header).
/// A frame's length is carried by ZeroMQ, so the payload size is not repeated here.
public struct FrameHeader: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Encoded size in bytes.
    public static let byteCount = 32
    /// "PCLW" read as a little-endian `UInt32`.
    public static let magic: UInt32 = 0x574C_4350
    /// The protocol version this build speaks.
    public static let version: UInt8 = 1

    public var type: MessageType
    public var generation: UInt64
    public var step: UInt64
    public var collective: UInt32
    public var chunk: UInt32

    /// A header with every field given.
    public init(type: MessageType, generation: UInt64, step: UInt64, collective: UInt32, chunk: UInt32) {
        self.type = type
        self.generation = generation
        self.step = step
        self.collective = collective
        self.chunk = chunk
    }

    /// Writes the 32 encoded bytes at `p`.
    @inline(__always)
    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeBytes(of: FrameHeader.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: FrameHeader.version, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: type.rawValue, toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: generation.littleEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: step.littleEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: collective.littleEndian, toByteOffset: 24, as: UInt32.self)
        p.storeBytes(of: chunk.littleEndian, toByteOffset: 28, as: UInt32.self)
    }

    /// Decodes and checks a header frame: exact size, magic, version and reserved bits. The
    /// type is checked against what the receiver accepts by `FrameValidator`.
    @inline(__always)
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<FrameHeader, DropReason> {
        guard bytes.count == byteCount, let p = bytes.baseAddress else {
            return .failure(bytes.count < byteCount ? .headerTruncated : .headerOversized)
        }
        guard UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == magic else {
            return .failure(.badMagic)
        }
        guard p.load(fromByteOffset: 4, as: UInt8.self) == version else { return .failure(.unsupportedVersion) }
        guard p.loadUnaligned(fromByteOffset: 6, as: UInt16.self) == 0 else { return .failure(.reservedBitsSet) }
        return .success(FrameHeader(
            type: MessageType(rawValue: p.load(fromByteOffset: 5, as: UInt8.self)),
            generation: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            step: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            collective: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt32.self)),
            chunk: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 28, as: UInt32.self))))
    }

    public var description: String {
        "\(type) gen \(generation) step \(step) op \(collective) chunk \(chunk)"
    }
}

/// Why a received message was dropped.
public enum DropReason: Int, Error, CaseIterable, Sendable, CustomStringConvertible {
    case headerTruncated, headerOversized, badMagic, unsupportedVersion, reservedBitsSet
    case unknownType, payloadTooLarge, missingPayload, extraFrames
    /// Well-formed, but of an older generation (or otherwise stale for the receiver).
    case stale

    public var description: String {
        switch self {
        case .headerTruncated: return "header truncated"
        case .headerOversized: return "header oversized"
        case .badMagic: return "bad magic"
        case .unsupportedVersion: return "unsupported version"
        case .reservedBitsSet: return "reserved bits set"
        case .unknownType: return "unknown type"
        case .payloadTooLarge: return "payload too large"
        case .missingPayload: return "missing payload frame"
        case .extraFrames: return "extra frames"
        case .stale: return "stale"
        }
    }
}

/// How many messages were dropped, per reason.
public struct DropCounts: Sendable, Equatable, CustomStringConvertible {
    private var counts = [Int](repeating: 0, count: DropReason.allCases.count)

    public init() {}

    /// Dropped for `reason`.
    public subscript(reason: DropReason) -> Int { counts[reason.rawValue] }

    /// Dropped for any reason.
    public var total: Int { counts.reduce(0, +) }

    /// Counts one more drop for `reason`.
    public mutating func record(_ reason: DropReason) { counts[reason.rawValue] += 1 }

    public var description: String {
        let parts = DropReason.allCases.filter { self[$0] > 0 }.map { "\($0): \(self[$0])" }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }
}

/// Checks received messages against what a receiver accepts: the types it knows, each with its
/// largest payload. A message that fails is dropped and counted; nothing here throws or traps.
public struct FrameValidator: Sendable {
    private var limits = [Int](repeating: -1, count: 256)  // −1: type not accepted
    /// Messages dropped so far, per reason.
    public private(set) var drops = DropCounts()

    /// Accepts the `(type, largest payload in bytes)` pairs given.
    public init(accepting: [(MessageType, maxPayload: Int)]) {
        for (type, max) in accepting { limits[Int(type.rawValue)] = Swift.max(0, max) }
    }

    /// Largest payload accepted for `type`, or nil when the type is not accepted.
    public func maxPayload(_ type: MessageType) -> Int? {
        let m = limits[Int(type.rawValue)]
        return m < 0 ? nil : m
    }

    /// Validates a message given as its frames' contents: the header frame, the payload frame's
    /// size (nil if there was none) and how many frames followed the payload. Returns the header,
    /// or the reason after counting the drop.
    public mutating func validate(header: UnsafeRawBufferPointer, payloadCount: Int?, extraFrames: Int) -> Result<FrameHeader, DropReason> {
        let result = check(header: header, payloadCount: payloadCount, extraFrames: extraFrames)
        if case .failure(let reason) = result { drops.record(reason) }
        return result
    }

    private func check(header: UnsafeRawBufferPointer, payloadCount: Int?, extraFrames: Int) -> Result<FrameHeader, DropReason> {
        switch FrameHeader.decode(header) {
        case .failure(let reason):
            return .failure(reason)
        case .success(let h):
            let limit = limits[Int(h.type.rawValue)]
            guard limit >= 0 else { return .failure(.unknownType) }
            guard let payloadCount else { return .failure(.missingPayload) }
            guard extraFrames == 0 else { return .failure(.extraFrames) }
            guard payloadCount <= limit else { return .failure(.payloadTooLarge) }
            return .success(h)
        }
    }

    /// Counts a drop decided by the receiver (a stale generation, say).
    public mutating func record(_ reason: DropReason) { drops.record(reason) }
}
