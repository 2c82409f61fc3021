import ArgumentParser
import Basics
import Control
import FoundationEssentials
import Job
import JobConfig
import Ring
import Spawn
import Tensors
import Trainer

#if canImport(Glibc)
import Glibc
#endif

/// `proclip launch`: a coordinator and N workers on this host, one progress display.
struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Run a job on this host: a coordinator and N workers, with one progress display.",
        discussion: """
            The run directory is laid out as for `proclip train` (config.yaml, metrics.jsonl, eval.json, \
            train.log, final.safetensors), plus coordinator.log and worker-K.log. Ctrl-C stops the job cleanly: \
            the coordinator stops the workers; stragglers are terminated. The exit status is the coordinator's.
            """)

    @Option(help: "Job config (YAML).") var config: String
    @Option(help: "Worker processes.") var workers: Int = 2
    @Option(help: "Run directory (default: runs/<config name>).") var runDir: String?
    @Option(help: "Stop after N global steps.") var maxSteps: Int?
    @Option(help: "Threads per worker (default: CPUs / workers, at least 1).") var threads: Int?
    @Option(help: "Dataset directory (default: the config's data.path).") var data: String?
    @Option(help: "Go on with fewer workers when some die (default: all of them are needed).") var minWorkers: Int?
    @Option(help: "Control port (default: a free one).") var port: Int?
    @Option(help: "Resume from a checkpoint: auto (the newest that verifies) or a path.") var resume: String?
    @Option(help: "Checkpoint every N steps (0: only at phase ends and by time).") var checkpointEvery: Int?
    @Option(help: "Checkpoint directory (default: <run dir>/checkpoints).") var checkpointDir: String?
    @Option(help: "Stop the job after this many checkpoints in a row could not be written (default 2; 0: never).")
    var maxCheckpointFailures: Int?
    @Flag(help: "Reuse a run directory that already holds a run.") var overwrite = false
    @Flag(help: "No live progress line.") var quiet = false
    @Option(help: "Ring between the workers: ipc (Unix sockets, payloads in shared memory) or tcp (loopback).")
    var transport: LocalTransport = .ipc
    @Option(help: "Workers all-reduce gradient buckets during backward: auto, on, off (see `proclip worker --help`).")
    var overlap: GradientOverlap = .auto
    @OptionGroup(title: "Security (default: keys in RUN_DIR/keys, created there when missing)") var security: SecurityOptions

    func validate() throws {
        if workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let m = minWorkers, m < 1 || m > workers { throw ValidationError("--min-workers must be in 1...--workers") }
    }

    func run() throws {
        let interrupted = SignalFlag()
        Signals.handle { _ in interrupted.raise() }
        let job = try JobConfig.load(path: config)
        let dir = runDir ?? "runs/\(job.name)"
        try Files.makeDirectories(dir)
        if Files.exists(dir + "/metrics.jsonl") && !overwrite && resume == nil {
            throw ValidationError("\(dir) already holds a run (metrics.jsonl); choose another --run-dir, pass --overwrite, or --resume auto")
        }
        let exe = selfExecutable()
        // The job's keys: given, or the run directory's own (made once, reused on resume).
        let keyPath: String? = security.insecure ? nil : security.keyPath ?? dir + "/keys"
        let statusSecurity: ControlSecurity = try keyPath.map {
            .curve(security.keyPath == nil ? try JobKeys.loadOrCreate(in: $0, role: .status).keys : try JobKeys.load($0, role: .status))
        } ?? .insecure
        let keyArgs = keyPath.map { ["--keys", $0] } ?? ["--insecure"]
        let endpoint = "tcp://127.0.0.1:\(try port ?? freePort())"
        var coordArgs = ["coordinator", "--config", config, "--listen", endpoint, "--workers", "\(workers)", "--run-dir", dir,
                         "--min-workers", "\(minWorkers ?? workers)"]
        coordArgs += resume.map { ["--resume", $0] } ?? ["--overwrite"]
        coordArgs += keyArgs
        if let c = checkpointEvery { coordArgs += ["--checkpoint-every", "\(c)"] }
        if let c = checkpointDir { coordArgs += ["--checkpoint-dir", c] }
        if let m = maxCheckpointFailures { coordArgs += ["--max-checkpoint-failures", "\(m)"] }
        if let m = maxSteps { coordArgs += ["--max-steps", "\(m)"] }
        if let d = data { coordArgs += ["--data", d] }
        let perWorker = threads ?? max(1, cpuCount() / workers)
        var workerArgs = ["worker", "--coordinator", endpoint, "--threads", "\(perWorker)"]
        workerArgs += ["--overlap", overlap.rawValue] + keyArgs
        if let d = data { workerArgs += ["--data", d] }

        let coordinator = try LoggedProcess(executable: exe, arguments: coordArgs, log: dir + "/coordinator.log")
        var children = [coordinator]
        var workerProcs: [LoggedProcess] = []
        // ipc endpoints of this launch; their socket files and any shared memory left by a
        // worker that died early are removed at the end.
        let ringEndpoints = transport == .ipc ? (0..<workers).map { "ipc:///tmp/proclip-\(getpid())-worker-\($0)" } : []
        defer { for e in ringEndpoints { RingListener.removeLeftovers(of: e) } }
        for k in 0..<workers {
            let bind = ringEndpoints.isEmpty ? [] : ["--bind", ringEndpoints[k]]
            let p = try LoggedProcess(executable: exe, arguments: workerArgs + bind, log: dir + "/worker-\(k).log")
            workerProcs.append(p)
            children.append(p)
        }
        printError("proclip launch: coordinator on \(endpoint) and \(workers) worker(s) × \(perWorker) thread(s), ring over \(transport.rawValue); logs in \(dir)/")
        let status = try StatusClient(endpoint: endpoint, security: statusSecurity)
        var progress = ProgressLine()
        progress.enabled = !quiet
        var stopping = false
        var stopSent = 0.0
        var lastEvent = 0.0
        var lastQuery = 0.0
        var result: ExitStatus?
        while result == nil {
            usleep(200_000)
            let now = MonotonicClock.now()
            if interrupted.isRaised && !stopping {
                stopping = true
                stopSent = now
                progress.finishLine()
                printError("proclip launch: stopping the job")
                coordinator.send(signal: SIGTERM)
            }
            if let s = coordinator.poll() { result = s; break }
            if stopping && now - stopSent > 15 {
                for p in workerProcs { p.send(signal: SIGTERM) }
                coordinator.send(signal: SIGKILL)
            }
            for (k, p) in workerProcs.enumerated() {
                if let s = p.poll(), s != .exited(0), !stopping, (minWorkers ?? workers) == workers {
                    progress.finishLine()
                    printError("proclip launch: worker \(k) \(s); see \(p.log). Stopping the job.")
                    stopping = true
                    stopSent = now
                    coordinator.send(signal: SIGTERM)
                }
            }
            // The progress line wants fresh numbers; without it, events every few seconds will do (and
            // the coordinator, on the training hosts' cores, answers fewer questions).
            if now - lastQuery < (quiet ? 3 : 0.2) { continue }
            lastQuery = now
            if let r = try? status.query(timeout: 0.3) {
                for e in r.events where e.time > lastEvent {
                    lastEvent = e.time
                    if e.text.hasPrefix("phase ") || e.text.hasPrefix("after ") || e.text.hasPrefix("generation ") || e.text.hasPrefix("dead")
                        || e.text.hasPrefix("resume") {
                        progress.finishLine()
                        if !quiet { printError(e.text) }
                    }
                }
                let p = r.phase
                progress.show("\(p.name) \(p.index + 1)/\(p.count) step \(r.step)/\(r.totalSteps) "
                              + ProgressLine.bar(r.totalSteps > 0 ? Double(r.step) / Double(r.totalSteps) : 0) + " "
                              + r.loss.keys.sorted().map { "\($0) \(compact(r.loss[$0]!))" }.joined(separator: " ")
                              + " | \(r.samplesPerSecond.map { compact($0, digits: 3) } ?? "-") samples/s | world \(r.worldSize)"
                              + " | ETA \(r.etaSeconds.map { ProgressLine.duration($0) } ?? "--:--")", now: now)
            }
        }
        progress.finishLine()
        for p in workerProcs where p.wait(timeout: 10) == nil { p.send(signal: SIGTERM) }
        for p in workerProcs where p.wait(timeout: 5) == nil { p.send(signal: SIGKILL); _ = p.wait(timeout: 5) }
        _ = children
        let code: Int32
        switch result! {
        case .exited(let c): code = c
        case .signaled(let s): code = 128 + s
        }
        if code == 0, let data = try? Files.read(dir + "/eval.json"),
           let reports = try? JSONDecoder().decode([EvalReport].self, from: Data(data)) {
            print(EvalTable.markdown(reports.map { ($0.phase.map { "after \($0)" } ?? $0.model, $0) }, variants: job.data.variants))
        } else if code != 0 {
            printError("proclip launch: the coordinator \(result!); see \(dir)/coordinator.log")
        }
        print("run directory: \(dir)")
        throw ExitCode(code)
    }

    func selfExecutable() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(cString: buf) : CommandLine.arguments[0]
    }

    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("cannot create a socket to find a free port") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw ValidationError("cannot find a free port (pass --port)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
