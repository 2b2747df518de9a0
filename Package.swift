// swift-tools-version:5.9
// muwa: a Swift batch worker for OPT language models.
// Dependencies point one way: muwad → Executors → (JobQueue, Evaluation, OPTEngine, LoRAOps, Storage);
// Evaluation → (OPTEngine, LoRAOps).
import PackageDescription

let package = Package(
    name: "muwa",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "muwad", targets: ["muwad"]),
        .library(name: "OPTEngine", targets: ["OPTEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // C shims: the only places that see C headers.
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),

        // Hand-written SIMD kernels (widening BF16/F16 dot products), dispatched at run time by CPU.
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // The OPT engine: tensors, kernels, tokenizer, weights, model, generation. Knows nothing of jobs.
        .target(
            name: "OPTEngine", dependencies: ["COpenBLAS", "CKernels"],
            // -O, not -Ounchecked: overflow and bounds traps stay on (issue 9; bench showed no loss).
            swiftSettings: [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]),
        // LoRA adapters over the engine: load, apply, train, save.
        .target(
            name: "LoRAOps", dependencies: ["OPTEngine", "CKernels"],
            swiftSettings: [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]),
        // PostgreSQL through libpq; results and artifacts on disk. Its SQL (SQL/*.sql) and the migrations are
        // compiled in (EmbeddedSQL.swift, written by scripts/embed-sql.sh; EmbeddedSQLTests fails when it is
        // stale): an installed muwad needs no resource bundle.
        .target(
            name: "Storage",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")],
            exclude: ["SQL"]),
        // Writes Storage's EmbeddedSQL.swift from the .sql files (scripts/embed-sql.sh).
        .executableTarget(name: "EmbedSQLTool", path: "Sources/EmbedSQLTool"),
        // Claim, heartbeat, retry, cancel, rescue.
        .target(
            name: "JobQueue",
            dependencies: [
                "Storage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // Datasets (dolly, SQuAD, PIQA, wikitext), metrics and the evaluation runners: no jobs, no database.
        .target(name: "Evaluation", dependencies: ["OPTEngine", "LoRAOps"]),
        // generate / finetune / evaluate: pure functions of a job's payload.
        .target(
            name: "Executors",
            dependencies: [
                "JobQueue", "OPTEngine", "LoRAOps", "Storage", "Evaluation",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "muwad",
            dependencies: [
                "Executors", "JobQueue", "Storage", "OPTEngine", "LoRAOps",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        // Fuzz targets: every parser of untrusted bytes as one entry point (fuzz/README.md); muwa-fuzz
        // replays inputs, or runs libFuzzer when built with -D FUZZING (scripts/fuzz.sh).
        .target(
            name: "FuzzTargets",
            dependencies: ["OPTEngine", "LoRAOps", "Executors", "Evaluation", "Storage"]),
        .executableTarget(name: "muwa-fuzz", dependencies: ["FuzzTargets"]),

        // What the test targets share: a fresh database per test class, LOGIN roles, waitUntil.
        .target(
            name: "TestSupport", dependencies: ["Storage", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"),
        .testTarget(name: "OPTEngineTests", dependencies: ["OPTEngine"]),
        .testTarget(name: "LoRAOpsTests", dependencies: ["LoRAOps", "OPTEngine"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "TestSupport"]),
        .testTarget(name: "JobQueueTests", dependencies: ["JobQueue", "Storage", "TestSupport"]),
        .testTarget(
            name: "ExecutorsTests",
            dependencies: [
                "Executors", "Evaluation", "JobQueue", "Storage", "OPTEngine", "LoRAOps", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "MuwadTests", dependencies: ["muwad", "Storage", "TestSupport"]),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets"]),
    ]
)
