#if canImport(Glibc)
import Glibc
#endif

/// Addresses for a worker's data plane.
public enum LocalAddress {
    /// The local IPv4 address this host uses to reach `endpoint` (tcp://host:port): a UDP
    /// socket is "connected" there (no packet is sent) and asked for its own address. Falls back
    /// to 127.0.0.1 for ipc:// endpoints or when the host cannot be resolved.
    public static func toward(_ endpoint: String) -> String {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return "127.0.0.1" }
        let host = String(endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon])
        let port = String(endpoint[endpoint.index(after: colon)...])
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host == "*" ? "127.0.0.1" : host, port.isEmpty ? "9" : port, &hints, &result) == 0, let info = result else {
            return "127.0.0.1"
        }
        defer { freeaddrinfo(result) }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return "127.0.0.1" }
        defer { close(fd) }
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return "127.0.0.1" }
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { return "127.0.0.1" }
        var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        var addr = local.sin_addr
        guard inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count)) != nil else { return "127.0.0.1" }
        return String(cString: buf)
    }

    /// This host's name.
    public static var hostname: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        return String(cString: buf)
    }
}
