import Basics
import FoundationEssentials
import Tensors

/// `proclip data verify`: everything `FeatureDataset.open` checks, plus every byte: file sizes
/// and CRC-32s against the manifest, NaN/Inf in every feature array, and `captions.jsonl` (one
/// JSON object per row, holding a string for every caption variant). Each problem is one line
/// naming the file; nothing stops at the first.
public enum DatasetVerifier {
    /// The outcome of a verification.
    public struct Report: Sendable {
        /// Every problem found, one line each. Empty when the dataset is sound.
        public var problems: [FileError] = []
        /// Rows checked.
        public var rows = 0
        /// Bytes checksummed.
        public var bytes = 0
        /// The manifest's content hash, when the manifest could be read.
        public var contentHash: String?
    }

    /// Verifies the dataset in `directory`.
    public static func verify(_ directory: String) -> Report {
        var report = Report()
        let manifest: Manifest
        do {
            manifest = try Manifest.read(directory + "/manifest.json")
        } catch let e as FileError {
            report.problems.append(e)
            return report
        } catch {
            report.problems.append(FileError(directory + "/manifest.json", "\(error)"))
            return report
        }
        report.contentHash = manifest.contentHash
        // Checksums first: a file that does not match the manifest is reported as such.
        report.bytes = ManifestChecksums.check(directory, manifest, stopAtFirst: false, &report.problems)
        var loadProblems: [FileError] = []
        let dataset = FeatureDataset.load(directory, manifest, &loadProblems)
        for p in loadProblems where !report.problems.contains(where: { $0.path == p.path }) { report.problems.append(p) }
        guard let dataset else { return report }
        for s in dataset.shards {
            report.rows += s.entry.rows
            scanFinite(s.image, "image", variants: nil, &report)
            scanFinite(s.clipText, "clip_text", variants: manifest.variants, &report)
            scanFinite(s.llm, "llm", variants: manifest.variants, &report)
            if s.entry.files["captions.jsonl"] != nil {
                checkCaptions("\(directory)/\(s.entry.name)/captions.jsonl", rows: s.entry.rows, variants: manifest.variants, &report)
            }
        }
        if let p = dataset.prompts {
            let path = "\(directory)/\(manifest.prompts!.directory)"
            if let i = p.clipText.firstIndex(where: { !$0.isFinite }) {
                report.problems.append(FileError(path + "/clip_text.npy", "array 'clip_text': prompt \(i / manifest.dEmbed) holds NaN or Inf"))
            }
            if let i = p.llm.firstIndex(where: { !$0.isFinite }) {
                report.problems.append(FileError(path + "/llm.npy", "array 'llm': prompt \(i / manifest.dLLM) holds NaN or Inf"))
            }
        }
        return report
    }

    /// Reports rows holding NaN or Inf: how many, and the first (with its variant).
    static func scanFinite(_ a: NpyArray, _ name: String, variants: [String]?, _ report: inout Report) {
        let n = a.header.shape[0]
        guard n > 0 else { return }
        let rowElements = a.header.count / n
        let inner = a.header.shape.last!
        var buf = [Float](repeating: 0, count: rowElements)
        var bad = 0
        var first: (row: Int, element: Int)?
        buf.withUnsafeMutableBufferPointer { b in
            for r in 0..<n {
                a.copyFloats(from: r * rowElements, count: rowElements, to: b.baseAddress!)
                var rowBad = -1
                for j in 0..<rowElements where !b[j].isFinite {
                    rowBad = j
                    break
                }
                if rowBad >= 0 {
                    bad += 1
                    if first == nil { first = (r, rowBad) }
                }
            }
        }
        if let first {
            let variant = variants.map { " variant '\($0[first.element / inner])'" } ?? ""
            report.problems.append(FileError(a.path, "array '\(name)': \(bad) row\(bad == 1 ? " holds" : "s hold") NaN or Inf, first row \(first.row)\(variant)"))
        }
    }

    /// One JSON object per line with `"captions": {variant: text}` for every variant.
    static func checkCaptions(_ path: String, rows: Int, variants: [String], _ report: inout Report) {
        let bytes: [UInt8]
        do { bytes = try Files.read(path) } catch let e as FileError { report.problems.append(e); return } catch { return }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        if lines.count != rows {
            report.problems.append(FileError(path, "\(lines.count) lines for \(rows) rows"))
            return
        }
        struct Line: Decodable { let captions: [String: String] }
        let decoder = JSONDecoder()
        for (i, line) in lines.enumerated() {
            guard let parsed = try? decoder.decode(Line.self, from: Data(line)) else {
                report.problems.append(FileError(path, "line \(i + 1): not a JSON object with a \"captions\" object of strings"))
                return
            }
            if let missing = variants.first(where: { parsed.captions[$0] == nil }) {
                report.problems.append(FileError(path, "line \(i + 1): missing caption variant '\(missing)'"))
                return
            }
        }
    }
}
