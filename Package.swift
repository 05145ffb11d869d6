// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "drover",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "drover", targets: ["drover"]),
        .library(name: "DroverCore", targets: ["DroverCore"]),
        .library(name: "DroverStore", targets: ["DroverStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
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
        .target(
            name: "DroverCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DroverStore",
            dependencies: [
                "CHiredis",
                "DroverCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DroverTesting",
            dependencies: ["DroverCore", "DroverStore"]
        ),
        .executableTarget(
            name: "drover",
            dependencies: [
                "CCurl",
                "CHiredis",
                "DroverCore",
                "DroverStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DroverCoreTests",
            dependencies: ["DroverCore"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "DroverStoreTests",
            dependencies: ["DroverStore", "DroverTesting", "DroverCore"]
        ),
    ]
)
