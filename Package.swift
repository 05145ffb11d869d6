// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "drover",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "drover", targets: ["drover"]),
        .executable(name: "drover-egress-forward", targets: ["drover-egress-forward"]),
        .library(name: "DroverCore", targets: ["DroverCore"]),
        .library(name: "DroverRedis", targets: ["DroverRedis"]),
        .library(name: "DroverQueue", targets: ["DroverQueue"]),
        .library(name: "DroverSelfHosted", targets: ["DroverSelfHosted"]),
        .library(name: "DroverSessionLog", targets: ["DroverSessionLog"]),
        .library(name: "DroverDatabase", targets: ["DroverDatabase"]),
        .library(name: "DroverBrain", targets: ["DroverBrain"]),
        .library(name: "DroverSchedule", targets: ["DroverSchedule"]),
        .library(name: "DroverAPI", targets: ["DroverAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "CSpawn"),
        .target(
            name: "DroverCore",
            dependencies: [
                "CSpawn",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Drover's metrics, named in one place, and their Prometheus exposition.
        .target(
            name: "DroverMetrics",
            dependencies: [
                "DroverCore",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "DroverRedis",
            dependencies: [
                "CHiredis",
                "DroverCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DroverQueue",
            dependencies: ["DroverCore", "DroverMetrics", "DroverRedis"]
        ),
        .target(
            name: "DroverSelfHosted",
            dependencies: ["DroverCore", "DroverRedis"]
        ),
        .target(
            name: "DroverDatabase",
            dependencies: [
                "DroverCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "DroverSessionLog",
            dependencies: [
                "DroverCore",
                "DroverDatabase",
                "DroverMetrics",
                "DroverRedis",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DroverHTTP",
            dependencies: ["CCurl", "DroverCore"]
        ),
        .target(
            name: "DroverTools",
            dependencies: ["DroverCore"]
        ),
        .target(
            name: "DroverBrain",
            dependencies: [
                "DroverCore",
                "DroverFileStore",
                "DroverHTTP",
                "DroverMetrics",
                "DroverQueue",
                "DroverRedis",
                "DroverSelfHosted",
                "DroverSessionLog",
                "DroverTools",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DroverEgress",
            dependencies: [
                "DroverCore",
                "DroverTools",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        // The relay inside each sandbox with a network policy: plain C, so that it needs nothing
        // in the sandbox beyond libc.
        .executableTarget(
            name: "drover-egress-forward",
            // The Swift runtime is linked into every product, but this one uses none of it, and
            // a sandbox cannot load it: the toolchain's libraries are outside what it sees.
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "--gc-sections", "-Xlinker", "--strip-all"])]
        ),
        .target(
            name: "DroverControlPlane",
            dependencies: ["DroverCore", "DroverDatabase", "DroverRedis"]
        ),
        .target(
            name: "DroverFileStore",
            dependencies: [
                "DroverCore",
                "DroverRedis",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "DroverHands",
            dependencies: [
                "DroverCore",
                "DroverEgress",
                "DroverFileStore",
                "DroverHTTP",
                "DroverMetrics",
                "DroverTools",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "MCP", package: "swift-sdk"),
            ]
        ),
        .target(
            name: "DroverJobs",
            dependencies: [
                "DroverBrain",
                "DroverCore",
                "DroverDatabase",
                "DroverFileStore",
                "DroverHands",
                "DroverModelStub",
                "DroverQueue",
                "DroverRedis",
                "DroverSessionLog",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "DroverSchedule",
            dependencies: [
                "DroverBrain",
                "DroverControlPlane",
                "DroverCore",
                "DroverDatabase",
                "DroverHands",
                "DroverJobs",
                "DroverMetrics",
                "DroverQueue",
                "DroverRedis",
                "DroverSessionLog",
                "DroverTools",
                "DroverWebhooks",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Webhooks: the outbox on the task queue, Standard Webhooks signing, the deliverer.
        .target(
            name: "DroverWebhooks",
            dependencies: [
                "DroverCore",
                "DroverDatabase",
                "DroverHTTP",
                "DroverQueue",
                "DroverRedis",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What a person reads of a session: the timeline, as terminal text and as HTML.
        .target(
            name: "DroverConsole",
            dependencies: [
                "DroverCore",
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        .target(
            name: "DroverAPI",
            dependencies: [
                "DroverBrain",
                "DroverConsole",
                "DroverControlPlane",
                "DroverCore",
                "DroverDatabase",
                "DroverFileStore",
                "DroverHands",
                "DroverMetrics",
                "DroverQueue",
                "DroverRedis",
                "DroverSchedule",
                "DroverSelfHosted",
                "DroverSessionLog",
                "DroverTools",
                "DroverWebhooks",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "DroverModelStub",
            dependencies: [
                "DroverCore",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "DroverTesting",
            dependencies: [
                "DroverCore",
                "DroverRedis",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "DroverRuntime",
            dependencies: [
                "DroverBrain",
                "DroverControlPlane",
                "DroverCore",
                "DroverDatabase",
                "DroverEgress",
                "DroverFileStore",
                "DroverHands",
                "DroverHTTP",
                "DroverJobs",
                "DroverModelStub",
                "DroverQueue",
                "DroverRedis",
                "DroverSessionLog",
                "DroverTools",
                "DroverWebhooks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DroverBench",
            dependencies: [
                "DroverAPI",
                "DroverBrain",
                "DroverCore",
                "DroverDatabase",
                "DroverEgress",
                "DroverHTTP",
                "DroverHands",
                "DroverJobs",
                "DroverMetrics",
                "DroverModelStub",
                "DroverQueue",
                "DroverRedis",
                "DroverRuntime",
                "DroverSelfHosted",
                "DroverSessionLog",
                "DroverTesting",
                "DroverTools",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "drover",
            dependencies: [
                "CCurl",
                "CHiredis",
                "DroverAPI",
                "DroverBench",
                "DroverBrain",
                "DroverConsole",
                "DroverControlPlane",
                "DroverCore",
                "DroverDatabase",
                "DroverEgress",
                "DroverFileStore",
                "DroverHands",
                "DroverJobs",
                "DroverMetrics",
                "DroverModelStub",
                "DroverQueue",
                "DroverRedis",
                "DroverRuntime",
                "DroverSchedule",
                "DroverSessionLog",
                "DroverTools",
                "DroverWebhooks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "DroverAPITests",
            dependencies: [
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                "DroverAPI",
                "DroverBrain",
                "DroverControlPlane",
                "DroverCore",
                "DroverDatabase",
                "DroverHTTP",
                "DroverQueue",
                "DroverRedis",
                "DroverSchedule",
                "DroverSessionLog",
                "DroverTesting",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DroverBrainTests",
            dependencies: [
                "DroverBrain",
                "DroverCore",
                "DroverDatabase",
                "DroverHTTP",
                "DroverModelStub",
                "DroverQueue",
                "DroverRedis",
                "DroverSessionLog",
                "DroverTesting",
                "DroverTools",
            ]
        ),
        .testTarget(
            name: "DroverHandsTests",
            dependencies: [
                "DroverBrain",
                "DroverCore",
                "DroverDatabase",
                "DroverEgress",
                "DroverFileStore",
                "DroverHands",
                "DroverRedis",
                "DroverModelStub",
                "DroverSessionLog",
                "DroverTesting",
                "DroverTools",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "DroverCoreTests",
            dependencies: ["DroverCore", "DroverTesting"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "DroverJobsTests",
            dependencies: [
                "DroverBrain", "DroverCore", "DroverDatabase", "DroverJobs", "DroverModelStub", "DroverQueue", "DroverRedis", "DroverSessionLog",
                "DroverTesting", "DroverTools",
            ]
        ),
        .testTarget(
            name: "DroverScheduleTests",
            dependencies: [
                "DroverBrain",
                "DroverCore",
                "DroverDatabase",
                "DroverQueue",
                "DroverRedis",
                "DroverSchedule",
                "DroverSessionLog",
                "DroverTesting",
            ]
        ),
        .testTarget(
            name: "DroverDatabaseTests",
            dependencies: [
                "DroverCore",
                "DroverDatabase",
                "DroverTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "DroverQueueTests",
            dependencies: ["DroverCore", "DroverQueue", "DroverSelfHosted", "DroverTesting"]
        ),
        .testTarget(
            name: "DroverRedisTests",
            dependencies: [
                "DroverCore",
                "DroverQueue",
                "DroverRedis",
                "DroverSessionLog",
                "DroverTesting",
            ]
        ),
        .testTarget(
            name: "DroverSessionLogTests",
            dependencies: [
                "DroverCore",
                "DroverDatabase",
                "DroverRedis",
                "DroverSessionLog",
                "DroverTesting",
            ]
        ),
    ]
)
