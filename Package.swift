// swift-tools-version: 6.1
import PackageDescription

/// Compiler settings every Swift target shares: Swift 6 language mode (strict concurrency) plus
/// the upcoming features the house style asks for.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    // Nonisolated async functions run on the caller's actor (SE-0461): closures and non-Sendable
    // helpers (a COPY writer, a transaction body) can be used from any isolation without hopping.
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "cognito-reset",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cognito-reset", targets: ["cognito-reset"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "CognitoClient", targets: ["CognitoClient"]),
        .library(name: "ResetQueue", targets: ["ResetQueue"]),
        .library(name: "PostgresTesting", targets: ["PostgresTesting"]),
        .library(name: "CognitoTesting", targets: ["CognitoTesting"]),
        .library(name: "SystemTesting", targets: ["SystemTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // 3.x and 4.x expose the same API we use; allowing both lets one copy serve every package.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // libpq's C API. Debian keeps libpq-fe.h in /usr/include/postgresql: only pkg-config knows.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // The one definition of text that is safe to show on a terminal or in a log line.
        .target(
            name: "TerminalSafety",
            swiftSettings: strictSettings
        ),
        .target(
            name: "CognitoClient",
            dependencies: [
                "TerminalSafety",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // A scriptable fake HTTP server for fault tests (throttling, 5xx, resets, timeouts...).
        // What tests of a daemon need from the system: child processes, a systemd notify socket,
        // free ports, a lock box.
        .target(
            name: "SystemTesting",
            swiftSettings: strictSettings
        ),
        // Fakes of the AWS side: an HTTP server that plays Cognito and STS, moto.
        .target(
            name: "CognitoTesting",
            dependencies: [
                "SystemTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "ResetQueue",
            dependencies: [
                "Postgres",
                "CognitoClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings,
            plugins: ["EmbedMigrations", "EmbedBuildInfo"]
        ),
        // What a daemon needs around its work: systemd notify and watchdog, log lines for the
        // journal, a small HTTP endpoint for metrics and health. Knows nothing of jobs.
        .target(
            name: "Daemon",
            dependencies: [
                "TerminalSafety",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cognito-reset",
            dependencies: [
                "Postgres",
                "CognitoClient",
                "ResetQueue",
                "Daemon",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Test support shipped as a product: isolated throw-away databases on a real server.
        .target(
            name: "PostgresTesting",
            dependencies: ["Postgres"],
            swiftSettings: strictSettings
        ),

        // scripts/bench.sh's driver: throughput, SQL ceiling, wake-up latency, worker memory.
        .executableTarget(
            name: "cognito-reset-bench",
            dependencies: [
                "Postgres", "PostgresTesting", "CognitoTesting", "SystemTesting", "CognitoClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // Build-time embedding of migrations/*.sql into the ResetQueue module, so a built binary
        // carries its schema and needs no source tree next to it.
        .executableTarget(
            name: "migration-embedder",
            swiftSettings: strictSettings
        ),
        .plugin(
            name: "EmbedMigrations",
            capability: .buildTool(),
            dependencies: ["migration-embedder"]
        ),
        // Build-time embedding of VERSION (the one place the version is written) and the git
        // revision, for `--version`, the workers table and the package.
        .executableTarget(
            name: "build-info-embedder",
            swiftSettings: strictSettings
        ),
        .plugin(
            name: "EmbedBuildInfo",
            capability: .buildTool(),
            dependencies: ["build-info-embedder"]
        ),

        .testTarget(
            name: "PostgresTests",
            dependencies: [
                "Postgres", "PostgresTesting", "CognitoTesting", "SystemTesting", "CognitoClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CognitoClientTests",
            dependencies: ["CognitoClient", "CognitoTesting", "SystemTesting"],
            resources: [.copy("Fixtures")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["Daemon", "TerminalSafety", "SystemTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ResetQueueTests",
            dependencies: ["ResetQueue", "Postgres", "PostgresTesting", "CognitoClient", "CognitoTesting", "SystemTesting"],
            swiftSettings: strictSettings
        ),
        // Runs the built `cognito-reset` binary as a subprocess: exit codes, messages, real effects.
        .testTarget(
            name: "CLITests",
            dependencies: [
                "Postgres", "PostgresTesting", "CognitoTesting", "SystemTesting", "CognitoClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
