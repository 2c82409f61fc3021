// swift-tools-version:6.0
import PackageDescription

/// proclip: a progressive vision-language alignment trainer for CPU clusters.
///
/// Module graph (each arrow: "is imported by"; dependencies point one way, nothing imports upward):
///   C shims: CZmq, COpenBLAS, CLZ4, CSharedMemory, CStreams (each wrapped by one Swift module)
///   Basics                      leaf: Locked, Monitor, Doorbell, Deadline, MonotonicClock, Files, LineFile, FNV1a64
///   Basics -> Tensors           slabs, BLAS, SafeTensors, random numbers, the element-wise pool
///   Tensors -> Model            layers, losses, AdamW, the step engine
///   Tensors -> Features         feature datasets, the sampler, the synthetic world
///   Model, Features -> JobConfig          the YAML job config
///   Model -> Checkpoints                  LZ4 checkpoints, the background writer
///   JobConfig -> Job            curriculum plan, evaluation, run directory, dataset checks, TrainingError
///   Job -> Trainer              the training loop, local and distributed executors
///   Basics -> Wire              ZeroMQ sockets, frames and their validation
///   Wire -> Ring                ring group, transports (ZeroMQ, direct links, in-memory), collectives
///   Wire -> Control             the control plane's messages and sockets
///   Control, Job, Checkpoints -> Coordinator     the job's daemon (no Trainer, no Ring)
///   Control, Ring, Trainer, Checkpoints -> Worker   one training process
///   Spawn                       local child processes (launch, benchmarks, multi-process tests)
///   everything -> proclip       the CLI, the only module that imports ArgumentParser
///
/// Test targets mirror the modules (Tests/<Module>Tests); Tests/Support holds what they share
/// (TestSupport: the built proclip, temporary directories, child processes, bounded waits;
/// CAllocCounter: a process-wide malloc count).
let v5: [SwiftSetting] = [.swiftLanguageMode(.v5)]
/// The numeric modules are optimised in every configuration: their loops run 100–500× slower
/// unoptimised, and unspecialised generics allocate, which would hide the allocation-free step
/// from the tests that check it.
let numeric: [SwiftSetting] = v5 + [.unsafeFlags(["-O"])]

let package = Package(
    name: "proclip",
    products: [
        .executable(name: "proclip", targets: ["proclip"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C libraries, each through a shim with its pkg-config name and Debian provider.
        .systemLibrary(name: "CZmq", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),

        // Acquire/release on memory two processes map (the ring's shared-memory slots).
        .target(name: "CSharedMemory"),
        // Socket set-up for the ring's direct links (plain TCP and Unix stream sockets).
        .target(name: "CStreams"),

        // Leaf: locks, deadlines, the monotonic clock, files, a content hash.
        .target(name: "Basics", swiftSettings: v5),
        .target(name: "Tensors", dependencies: ["COpenBLAS", "Basics"], swiftSettings: numeric),
        .target(name: "Model", dependencies: ["Tensors"], swiftSettings: numeric),
        .target(name: "Features", dependencies: ["Tensors", "Basics"], swiftSettings: numeric),
        .target(name: "Checkpoints", dependencies: ["CLZ4", "Basics", "Tensors", "Model"], swiftSettings: numeric),
        .target(name: "JobConfig", dependencies: ["Basics", "Tensors", "Model", "Features", .product(name: "Yams", package: "Yams")], swiftSettings: v5),
        .target(name: "Wire", dependencies: ["CZmq", "Basics"], swiftSettings: v5),
        .target(name: "Ring", dependencies: ["Basics", "Wire", "Tensors", "CSharedMemory", "CStreams"], swiftSettings: v5),
        .target(name: "Spawn", swiftSettings: v5),
        .target(name: "Control", dependencies: ["Basics", "Wire"], swiftSettings: v5),
        // The job: curriculum plan, evaluation, run directory, dataset checks, their errors.
        .target(name: "Job", dependencies: ["Basics", "Tensors", "Model", "Features", "JobConfig"], swiftSettings: v5),
        .target(name: "Trainer", dependencies: ["Basics", "Tensors", "Model", "Features", "JobConfig", "Job"], swiftSettings: v5),
        .target(name: "Coordinator", dependencies: ["Basics", "Control", "Wire", "Job", "Features", "JobConfig", "Model", "Tensors", "Checkpoints"], swiftSettings: v5),
        .target(name: "Worker", dependencies: ["Basics", "Control", "Wire", "Ring", "Job", "Trainer", "Features", "JobConfig", "Model", "Tensors", "Checkpoints"], swiftSettings: v5),
        .executableTarget(
            name: "proclip",
            dependencies: [
                "Basics", "Tensors", "Model", "JobConfig", "Features", "Job", "Trainer", "Wire", "Ring", "Spawn", "Control", "Coordinator", "Worker", "Checkpoints",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: v5),

        // Counts malloc calls process-wide, for the allocation-free step test.
        .target(name: "CAllocCounter", path: "Tests/Support/CAllocCounter"),
        // What the test targets share: the built proclip, temporary directories, child processes, bounded waits.
        .target(name: "TestSupport", dependencies: ["Spawn", "Basics"], path: "Tests/Support/TestSupport", swiftSettings: v5),
        .testTarget(name: "BasicsTests", dependencies: ["Basics"], swiftSettings: v5),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "Basics"], swiftSettings: v5),
        .testTarget(name: "FeaturesTests", dependencies: ["Features", "Basics", "Tensors", "CAllocCounter", "Spawn", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Basics", "Tensors", "CAllocCounter"], exclude: ["Fixtures"], swiftSettings: v5),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Basics", "Model", "Tensors", "Spawn", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "ControlTests", dependencies: ["Control", "Wire", "Tensors"], swiftSettings: v5),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Control", "Wire", "Basics", "Features", "JobConfig", "Model", "Tensors"],
                    swiftSettings: v5),
        .testTarget(name: "WorkerTests", dependencies: ["Worker", "Control", "Basics"], swiftSettings: v5),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Job", "Features", "JobConfig", "Model", "Tensors"], swiftSettings: v5),
        .testTarget(name: "JobConfigTests", dependencies: ["JobConfig", "Model"], swiftSettings: v5),
        .testTarget(name: "ProclipTests", dependencies: ["proclip", "Spawn", "Control", "Ring", "Basics", "TestSupport"], exclude: ["Configs"], swiftSettings: v5),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Basics", "CZmq", "TestSupport"], swiftSettings: v5),
        // The multi-process tests run the `proclip` executable that `swift test` builds beside them.
        .testTarget(name: "RingTests", dependencies: ["Ring", "Basics", "Wire", "Spawn", "CAllocCounter", "CStreams", "TestSupport"], swiftSettings: v5),
    ]
)
