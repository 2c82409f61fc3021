import ArgumentParser
import Basics
import Control
import Foundation

/// `--keys` and `--insecure`, shared by the commands that talk to a coordinator (and the
/// coordinator itself). Keys may also come from `PROCLIP_KEYS` (a key directory or file), which
/// suits launchers that set the environment (Slurm, Kubernetes).
struct SecurityOptions: ParsableArguments {
    @Option(help: "The job's keys: a directory from `proclip keys new` (each process reads its role's file from it) or one key file. Default: $PROCLIP_KEYS.")
    var keys: String?
    @Flag(help: "No authentication or encryption: anyone who reaches the ports can join or disrupt the job. Said in every log and in status.")
    var insecure = false

    /// The key path given (option, else environment), if any.
    var keyPath: String? {
        keys ?? ProcessInfo.processInfo.environment["PROCLIP_KEYS"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func validate() throws {
        if insecure && keys != nil { throw ValidationError("--keys and --insecure contradict each other: choose one") }
    }

    /// The security of a process of `role`: its keys from `--keys`/`PROCLIP_KEYS`, insecure when
    /// asked, else `fallback` (nil: an error naming what to pass).
    func resolve(_ role: JobKeys.Role, fallback: (() throws -> ControlSecurity)? = nil) throws -> ControlSecurity {
        if insecure { return .insecure }
        if let path = keyPath { return .curve(try JobKeys.load(path, role: role)) }
        if let fallback { return try fallback() }
        throw ControlKeyError("""
            security is on by default: pass the job's keys with --keys DIR|\(role.fileName) (or PROCLIP_KEYS) — the coordinator \
            writes them to RUN_DIR/keys, `proclip keys new DIR` makes them — or --insecure for a job run without them
            """)
    }
}

/// `proclip keys`: the job's key material.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make the CURVE keys that secure a job's control plane and ring.",
        subcommands: [New.self])

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Write fresh keys for a job into DIR: coordinator.key, worker.key, status.key (mode 0600).",
            discussion: """
                Give coordinator.key to the coordinator, worker.key to every worker host, status.key to those who \
                watch the job (it reads status, nothing else). Pass them with --keys DIR (each process reads its own \
                file) or --keys FILE, or set PROCLIP_KEYS. On shared storage one directory serves every host; \
                otherwise copy each file with its mode kept (scp -p, a Kubernetes Secret with defaultMode 0400).
                """)

        @Argument(help: "Directory to create (mode 0700).") var directory: String
        @Flag(help: "Replace keys that exist there (workers holding the old ones are locked out).") var replace = false

        func run() throws {
            let keys = try JobKeys.create(in: directory, replace: replace)
            for k in keys { print("\(directory)/\(k.role.fileName)  \(k.role)  public \(k.pair.publicKey)") }
        }
    }
}
