// swift-tools-version:6.0
import PackageDescription

/// proclip: a progressive vision-language alignment trainer for CPU clusters.
///
/// Module layout (dependencies point one way):
///   C shims (CZmq, COpenBLAS, CLZ4, CSharedMemory, CStreams)
///   Tensors -> Model -> Trainer -> Worker
///   Wire -> Ring -> Worker
///   Spawn (local child processes) -> CLI and the multi-process tests
///   Features, Checkpoints, JobConfig -> Coordinator and Worker
///   proclip (the CLI) on top: the only module that imports ArgumentParser.
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

        .target(name: "Tensors", dependencies: ["COpenBLAS"], swiftSettings: numeric),
        .target(name: "Model", dependencies: ["Tensors"], swiftSettings: numeric),
        .target(name: "Features", dependencies: ["Tensors"], swiftSettings: numeric),
        .target(name: "Checkpoints", dependencies: ["CLZ4", "Tensors", "Model"], swiftSettings: numeric),
        .target(name: "JobConfig", dependencies: ["Model", "Features", .product(name: "Yams", package: "Yams")], swiftSettings: v5),
        .target(name: "Wire", dependencies: ["CZmq"], swiftSettings: v5),
        .target(name: "Ring", dependencies: ["Wire", "Tensors", "CSharedMemory", "CStreams"], swiftSettings: v5),
        .target(name: "Spawn", swiftSettings: v5),
        .target(name: "Control", dependencies: ["Wire"], swiftSettings: v5),
        .target(name: "Coordinator", dependencies: ["Control", "Wire", "Ring", "Trainer", "Features", "JobConfig", "Model", "Tensors", "Checkpoints"], swiftSettings: v5),
        .target(name: "Worker", dependencies: ["Control", "Wire", "Ring", "Trainer", "Features", "JobConfig", "Model", "Tensors", "Checkpoints"], swiftSettings: v5),
        .target(name: "Trainer", dependencies: ["Tensors", "Model", "Features", "JobConfig"], swiftSettings: v5),
        .executableTarget(
            name: "proclip",
            dependencies: [
                "Tensors", "Model", "JobConfig", "Features", "Trainer", "Wire", "Ring", "Spawn", "Control", "Coordinator", "Worker", "Checkpoints", "CSharedMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: v5),

        // Counts malloc calls process-wide, for the allocation-free step test.
        .target(name: "CAllocCounter", path: "Tests/Support/CAllocCounter"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"], swiftSettings: v5),
        .testTarget(name: "FeaturesTests", dependencies: ["Features", "Tensors", "CAllocCounter"], swiftSettings: v5),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Tensors", "JobConfig", "CAllocCounter"], swiftSettings: v5),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Model", "Tensors"], swiftSettings: v5),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Control"], swiftSettings: v5),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Features", "JobConfig", "Model", "Tensors"], swiftSettings: v5),
        .testTarget(name: "JobConfigTests", dependencies: ["JobConfig", "Model"], swiftSettings: v5),
        .testTarget(name: "ProclipTests", dependencies: ["proclip", "Spawn", "Control", "Ring"], exclude: ["Configs"], swiftSettings: v5),
        .testTarget(name: "WireTests", dependencies: ["Wire"], swiftSettings: v5),
        // The multi-process tests run the `proclip` executable that `swift test` builds beside them.
        .testTarget(name: "RingTests", dependencies: ["Ring", "Wire", "Spawn", "CAllocCounter", "CStreams"], swiftSettings: v5),
    ]
)
