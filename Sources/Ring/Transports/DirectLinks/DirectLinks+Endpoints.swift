import Basics
import Wire
#if canImport(Glibc)
import Glibc
#endif

// Endpoint parsing and the text of the socket shim's errors.
extension DirectLinks {
    /// Host and port of `tcp://host:port` (`*` as the port: 0; IPv6 hosts in brackets).
    static func hostAndPort(_ endpoint: String) throws -> (String, Int) {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":"), colon > endpoint.index(endpoint.startIndex, offsetBy: 5) else {
            throw RingError.invalidArgument("endpoint \(endpoint): expected tcp://host:port or ipc://path")
        }
        var host = String(endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let portText = endpoint[endpoint.index(after: colon)...]
        if portText == "*" { return (host, 0) }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
            throw RingError.invalidArgument("endpoint \(endpoint): bad host or port")
        }
        return (host, port)
    }

    /// The text of a negative errno returned by the CStreams shim.
    static func text(_ negativeErrno: Int32) -> String {
        negativeErrno == -EINVAL ? "invalid address" : String(cString: strerror(-negativeErrno))
    }
}
