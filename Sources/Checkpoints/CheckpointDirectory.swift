import Basics
import Model
import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// A directory of checkpoints: `ckpt-<step>.lz4` files (`ckpt-<step>-end.lz4` at a phase's end;
/// the step has 12 digits), and `latest`, a one-line text file naming the newest one written.
///
/// Files only ever appear under a final name complete and fsynced (temporary name, fsync, rename,
/// fsync of the directory); a crash leaves at most `<name>.tmp-<pid>` files, which
/// `removeStaleTemporaries` deletes on the next start.
public struct CheckpointDirectory: Sendable {
    /// The directory.
    public let path: String

    /// The directory at `path` (nothing is created or read yet).
    public init(_ path: String) { self.path = path }

    /// One checkpoint file, known from its name alone.
    public struct Entry: Sendable, Equatable, Comparable {
        /// File name, e.g. `ckpt-000000001200.lz4`.
        public let name: String
        /// Global step.
        public let step: Int
        /// Taken at the end of a phase (never removed by retention).
        public let phaseEnd: Bool

        /// Older first: by step, and a phase-end checkpoint after a plain one of the same step.
        public static func < (a: Entry, b: Entry) -> Bool { (a.step, a.phaseEnd ? 1 : 0) < (b.step, b.phaseEnd ? 1 : 0) }
    }

    /// The file name of the checkpoint at `step`.
    public static func fileName(step: Int, phaseEnd: Bool) -> String {
        let digits = String(step)
        return "ckpt-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + (phaseEnd ? "-end" : "") + ".lz4"
    }

    /// The entry a file name denotes, or nil when it is not a checkpoint's name.
    public static func entry(named name: String) -> Entry? {
        guard name.hasPrefix("ckpt-"), name.hasSuffix(".lz4") else { return nil }
        var core = name.dropFirst(5).dropLast(4)
        let end = core.hasSuffix("-end")
        if end { core = core.dropLast(4) }
        guard core.count >= 12, core.allSatisfy({ $0.isASCII && $0.isNumber }), let step = Int(core) else { return nil }
        guard fileName(step: step, phaseEnd: end) == name else { return nil }
        return Entry(name: name, step: step, phaseEnd: end)
    }

    /// Full path of a file in the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// The path of `latest`.
    public var latestPath: String { file("latest") }

    /// The checkpoints present, oldest first.
    public func entries() throws -> [Entry] {
        try names().compactMap(CheckpointDirectory.entry(named:)).sorted()
    }

    /// The name `latest` holds, nil when there is no `latest`; an error when it is unreadable or
    /// does not hold one checkpoint name.
    public func latestName() throws -> String? {
        guard Files.exists(latestPath) else { return nil }
        let bytes = try Files.read(latestPath)
        guard bytes.count <= 64, let text = String(validating: bytes, as: UTF8.self) else {
            throw FileError(latestPath, "expected one checkpoint file name, got \(bytes.count) bytes")
        }
        let name = text.hasSuffix("\n") ? String(text.dropLast()) : text
        guard CheckpointDirectory.entry(named: name) != nil else {
            throw FileError(latestPath, "'\(name.prefix(64))' is not a checkpoint file name")
        }
        return name
    }

    /// Points `latest` at `name`, atomically (temporary file, fsync, rename, fsync directory).
    func setLatest(_ name: String) throws {
        try Files.writeAtomically(latestPath, Array((name + "\n").utf8))
    }

    /// Deletes `*.tmp-<pid>` files left by writers that are no longer running (a crash or a
    /// kill mid-write). Files of a live process, this one included, are left alone. Returns the
    /// names removed.
    @discardableResult
    public func removeStaleTemporaries() throws -> [String] {
        var removed: [String] = []
        for name in try names() {
            guard let last = name.split(separator: ".").last, last.hasPrefix("tmp-"), name.count > last.count + 1,
                  let pid = Int32(last.dropFirst(4)), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            if unlink(file(name)) == 0 { removed.append(name) }
        }
        if !removed.isEmpty { try syncDirectory(path) }
        return removed
    }

    /// Removes old checkpoints: keeps the newest `keepLast`, every phase-end checkpoint, and the
    /// one `latest` names. Returns the names removed.
    @discardableResult
    public func applyRetention(keepLast: Int) throws -> [String] {
        let all = try entries()
        var keep = Set(all.suffix(max(keepLast, 1)).map(\.name))
        for e in all where e.phaseEnd { keep.insert(e.name) }
        if let l = try? latestName() { keep.insert(l) }
        var removed: [String] = []
        for e in all where !keep.contains(e.name) {
            if unlink(file(e.name)) != 0 && errno != ENOENT { throw FileError(file(e.name), "cannot remove: \(Files.errnoText())") }
            removed.append(e.name)
        }
        if !removed.isEmpty { try syncDirectory(path) }
        return removed
    }

    /// The result of looking for the newest checkpoint that verifies.
    public struct Selection: Sendable {
        /// A checkpoint passed over, and why.
        public struct Skipped: Sendable, Equatable {
            /// The file's path.
            public let path: String
            /// What is wrong with it, e.g. `corrupt: an LZ4 block checksum does not match (…)`.
            public let reason: String
        }

        /// The checkpoint chosen, nil when none verifies.
        public let header: CheckpointHeader?
        /// Every checkpoint skipped (corrupt, truncated, missing), newest first.
        public let skipped: [Skipped]
        /// Problems that skipped no checkpoint: an unreadable directory or `latest`.
        public let notices: [String]

        /// One line per notice, then one per checkpoint skipped (`<path>: <reason>; skipped`).
        public var warnings: [String] { notices + skipped.map { "\($0.path): \($0.reason); skipped" } }
    }

    /// The newest checkpoint that passes `CheckpointFile.verify`, falling back past corrupt,
    /// truncated or missing ones (a `latest` naming an absent file counts as a missing one).
    public func newestValid() -> Selection {
        select { try CheckpointFile.verify($0) }
    }

    /// Like `newestValid`, but loads the checkpoint into `store` while verifying it (one pass
    /// over each file). A file that fails part-way leaves the store partly written; the next
    /// candidate then overwrites every tensor. With no valid checkpoint, the store is unspecified.
    public func loadNewestValid(into store: ParameterStore) -> Selection {
        select { try CheckpointFile.load($0, into: store) }
    }

    private func select(_ open: (String) throws -> CheckpointHeader) -> Selection {
        var notices: [String] = []
        var skipped: [Selection.Skipped] = []
        var candidates: [Entry]
        do { candidates = try entries() } catch {
            return Selection(header: nil, skipped: [], notices: ["\(error)"])
        }
        do {
            if let l = try latestName(), !candidates.contains(where: { $0.name == l }), let e = CheckpointDirectory.entry(named: l) {
                candidates.append(e)
                candidates.sort()
            }
        } catch {
            notices.append("\(error); ignored")
        }
        for e in candidates.reversed() {
            let f = file(e.name)
            guard Files.exists(f) else {
                skipped.append(.init(path: f, reason: "missing (named by \(latestPath))"))
                continue
            }
            do {
                return Selection(header: try open(f), skipped: skipped, notices: notices)
            } catch let error as FileError where error.path == f {
                skipped.append(.init(path: f, reason: error.problem))
            } catch {
                // Every skipped file is named, whatever the error says.
                skipped.append(.init(path: f, reason: "\(error)"))
            }
        }
        return Selection(header: nil, skipped: skipped, notices: notices)
    }

    /// Names in the directory (without `.` and `..`).
    func names() throws -> [String] {
        guard let dir = opendir(path) else { throw FileError(path, "cannot list directory: \(Files.errnoText())") }
        defer { closedir(dir) }
        var out: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }
}

/// fsyncs directory `dir`, so entries created, renamed or removed in it survive a crash.
func syncDirectory(_ dir: String) throws {
    let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0 { throw FileError(dir, "cannot open directory: \(Files.errnoText())") }
    defer { close(fd) }
    if fsync(fd) != 0 { throw FileError(dir, "fsync of the directory failed: \(Files.errnoText())") }
}
