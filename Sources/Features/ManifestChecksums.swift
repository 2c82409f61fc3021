import Basics

/// Every file a manifest lists, checked against its entry: size first, then the CRC-32 of every
/// byte. `FeatureDataset.open(_:verifyChecksums:)` stops at the first mismatch (a trainer must
/// not start on damaged data); `DatasetVerifier` reports them all.
enum ManifestChecksums {
    /// The files `manifest` lists under `directory`, with their entries: each shard's files in
    /// name order, shards in manifest order, then the prompts' files.
    static func listed(_ directory: String, _ manifest: Manifest) -> [(path: String, entry: FileEntry)] {
        var out: [(path: String, entry: FileEntry)] = []
        for s in manifest.shards {
            for name in s.files.keys.sorted() { out.append(("\(directory)/\(s.name)/\(name)", s.files[name]!)) }
        }
        if let p = manifest.prompts {
            for name in p.files.keys.sorted() { out.append(("\(directory)/\(p.directory)/\(name)", p.files[name]!)) }
        }
        return out
    }

    /// Checks the listed files, appending one problem per bad file (at most one with
    /// `stopAtFirst`). A file missing from a shard directory that is missing too is left to
    /// `FeatureDataset.load`, which names the directory once. Returns the bytes checksummed.
    @discardableResult
    static func check(_ directory: String, _ manifest: Manifest, stopAtFirst: Bool, _ problems: inout [FileError]) -> Int {
        var bytes = 0
        for (path, entry) in listed(directory, manifest) {
            if !Files.exists(path) {
                let dir = String(path[..<path.lastIndex(of: "/")!])
                if Files.exists(dir) { problems.append(FileError(path, "missing: listed in manifest.json")) }
            } else {
                do {
                    bytes += try check(path, entry)
                } catch let e as FileError {
                    problems.append(e)
                } catch {
                    problems.append(FileError(path, "\(error)"))
                }
            }
            if stopAtFirst && !problems.isEmpty { break }
        }
        return bytes
    }

    /// Checks one file's size and CRC-32 against `entry`; the error names the file and both
    /// values. Returns the file's size.
    static func check(_ path: String, _ entry: FileEntry) throws -> Int {
        let f = try MappedFile(path: path)
        if f.bytes.count != entry.bytes {
            throw FileError(path, "file is \(f.bytes.count) bytes, manifest.json says \(entry.bytes)")
        }
        let crc = CRC32.hex(CRC32.checksum(f.bytes))
        if crc != entry.crc32 {
            throw FileError(path, "crc32 does not match manifest.json: found \(crc), expected \(entry.crc32) "
                            + "(the file is damaged or was changed after the manifest was written)")
        }
        return f.bytes.count
    }
}
