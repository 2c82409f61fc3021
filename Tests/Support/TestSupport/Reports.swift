import Foundation

/// The labelled rows of a command's report — `label   value`, the label ending at the first run of
/// two spaces — each label's values in order. Lines that start with a space (table rows) are not
/// labelled rows.
public func labelledRows(_ text: String) -> [String: [String]] {
    var rows: [String: [String]] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix(" ") {
        guard let gap = line.range(of: "  ") else { continue }
        let value = line[gap.upperBound...].drop { $0 == " " }
        rows[String(line[..<gap.lowerBound]), default: []].append(String(value))
    }
    return rows
}

/// The non-negative integers written in `text`, in order ("step 12, 75 tensors" → [12, 75]).
public func integers<S: StringProtocol>(in text: S) -> [Int] {
    text.split { !$0.isNumber }.compactMap { Int($0) }
}
