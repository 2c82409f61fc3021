import Basics

/// How a transport joins a group: its place in the ring, its direct links, and what it can do
/// once every rank is up. `RingGroup` uses it only while it is created (the hello round, on the
/// thread creating the group); the collectives never see it, only `RingTransport`.
///
/// The group's hello, in order: reads `rank`, `worldSize` and `directEndpoint`; exchanges hello
/// records over `RingTransport` (ring messages, so they work before any direct link exists);
/// calls `connectDirect` if the group uses direct links; then calls `peersReady` once and reads
/// the returned `RingTransportCapabilities`, which hold for the group's life.
public protocol RingTransportSetup: AnyObject {
    /// This rank, in `0..<worldSize`.
    var rank: Int { get }
    /// Number of ranks.
    var worldSize: Int { get }
    /// Where other ranks reach this one directly (messages of a type that `isDirect`, and
    /// exchanges), or nil when the transport offers no direct connections.
    var directEndpoint: String? { get }

    /// Connects to every rank's direct endpoint (`endpoints[rank]` is this rank's own) under
    /// `generation`, and waits until every other rank has connected to this one — or, with
    /// `ringNeighboursOnly`, to the successor's, waiting for the predecessor (enough for
    /// `exchange`).
    func connectDirect(_ endpoints: [String], generation: UInt64, ringNeighboursOnly: Bool, deadline: Deadline) throws

    /// Called once every rank of the group is known to be up (at the end of the hello round):
    /// the transport may now use resources other ranks created, such as its successor's shared
    /// memory. Returns what the transport offers the group from then on.
    func peersReady() -> RingTransportCapabilities
}

/// What a joined transport offers the group, read once at the end of the hello round.
public struct RingTransportCapabilities: Sendable, Equatable {
    /// Whether `exchange` moves payloads between the caller's memory and the ring neighbours'
    /// without intermediate buffers. A group with direct links then runs large all-reduces,
    /// all-gathers and reduce-scatters as exchanges (if every rank's options ask for it, see
    /// `RingOptions.directBulk`).
    public var exchangesDirectly: Bool
    /// Whether ring payloads reach the successor through its shared-memory slots.
    public var sharesMemory: Bool

    /// Capabilities as given.
    public init(exchangesDirectly: Bool, sharesMemory: Bool) {
        self.exchangesDirectly = exchangesDirectly
        self.sharesMemory = sharesMemory
    }
}
