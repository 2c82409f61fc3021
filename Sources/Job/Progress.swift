#if canImport(Glibc)
import Glibc
#endif

/// The live progress line on stderr: rewritten in place on a terminal, a plain line now and then
/// otherwise (logs, CI).
public struct ProgressLine {
    let isTerminal = isatty(2) != 0
    private var lastPrint = -1.0
    public var enabled = true

    public init() {}

    /// Shows `text`; on a terminal at most ~10 times a second, otherwise every `interval` seconds
    /// or when `force`.
    public mutating func show(_ text: String, now: Double, force: Bool = false, interval: Double = 10) {
        guard enabled else { return }
        if isTerminal {
            if force || now - lastPrint >= 0.1 {
                fputs("\r\u{1B}[2K" + text, stderr)
                fflush(stderr)
                lastPrint = now
            }
        } else if force || lastPrint < 0 || now - lastPrint >= interval {
            fputs(text + "\n", stderr)
            lastPrint = now
        }
    }

    /// Ends the in-place line (before other output).
    public mutating func finishLine() {
        guard enabled, isTerminal, lastPrint >= 0 else { return }
        fputs("\n", stderr)
        lastPrint = -1
    }

    /// A bar of `width` cells for `fraction` in [0, 1].
    public static func bar(_ fraction: Double, width: Int = 20) -> String {
        let f = min(max(fraction, 0), 1)
        let full = Int(f * Double(width))
        return String(repeating: "█", count: full) + String(repeating: "░", count: width - full)
    }

    /// h:mm:ss.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        let h = s / 3600, m = (s % 3600) / 60, sec = s % 60
        return h > 0 ? "\(h):\(two(m)):\(two(sec))" : "\(m):\(two(sec))"
    }

    static func two(_ x: Int) -> String { x < 10 ? "0\(x)" : "\(x)" }
}

/// A number with `digits` significant figures, for progress lines and tables (no Foundation).
public func compact(_ x: Double, digits: Int = 4) -> String {
    guard x.isFinite else { return "\(x)" }
    if x == 0 { return "0" }
    var e = 0
    var m = abs(x)
    while m >= 10 { m /= 10; e += 1 }
    while m < 1 { m *= 10; e -= 1 }
    if e >= 5 || e < -3 {
        return (x < 0 ? "-" : "") + fixed(m, max(digits - 1, 0)) + "e" + (e < 0 ? "-" : "+") + (abs(e) < 10 ? "0" : "") + "\(abs(e))"
    }
    return fixed(x, max(digits - 1 - max(e, 0), 0))
}

/// `x` with exactly `decimals` digits after the point.
public func fixed(_ x: Double, _ decimals: Int) -> String {
    var p = 1.0
    for _ in 0..<decimals { p *= 10 }
    let r = (abs(x) * p).rounded()
    let whole = Int(r / p)
    let frac = Int(r - Double(whole) * p)
    var s = (x < 0 && r != 0 ? "-" : "") + "\(whole)"
    if decimals > 0 {
        let f = "\(frac)"
        s += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return s
}
