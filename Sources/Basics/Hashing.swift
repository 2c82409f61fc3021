/// FNV-1a, 64-bit: a small, stable content hash for identities (config and manifest hashes that
/// hosts compare). Not a defence against tampering.
public struct FNV1a64: Sendable {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        value = h
    }

    public mutating func update(_ text: String) {
        var t = text
        t.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The hash as 16 lowercase hex digits.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// The hex hash of a string.
    public static func hex(_ text: String) -> String {
        var h = FNV1a64()
        h.update(text)
        return h.hex
    }
}
