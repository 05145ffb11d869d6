import DroverCore
import DroverFileStore
import DroverRedis
import DroverTesting
import DroverTools
import Foundation
import Testing

@testable import DroverHands

/// The file store: how files cross hosts. Blobs are checked on every read, limits hold, and no
/// manifest or link makes the host write or read outside the directory it means.
@Suite("File store")
struct FileStoreTests {
    @Test("every byte value survives the trip; content stored once is stored once; the checksum catches a changed blob")
    func roundTripAndChecksum() async throws {
        try await withRedisClient { redis, _ in
            let store = FileStore(redis: redis)
            let bytes = Data((0...255).map { UInt8($0) } + Array("ünïcode\0tail".utf8))
            let stored = try await store.put(bytes, path: "data/all.bin", executable: true)
            #expect(stored.size == bytes.count && stored.executable && stored.path == "data/all.bin")
            #expect(try await store.bytes(of: stored) == bytes)
            let again = try await store.put(bytes, path: "elsewhere.bin")
            #expect(again.sha256 == stored.sha256)
            #expect(try await redis.scanKeys(matching: "drover:blob:*").count == 1)

            // A blob changed in Redis (a bad restore, a hand edit) is refused, not delivered.
            _ = try await redis.send(["SET", "drover:blob:\(stored.sha256)", Data("tampered".utf8).base64EncodedString()])
            await #expect(throws: FileStoreError.corrupt(path: "data/all.bin", sha256: stored.sha256)) { try await store.bytes(of: stored) }
            _ = try await redis.send(["DEL", "drover:blob:\(stored.sha256)"])
            await #expect(throws: FileStoreError.self) { try await store.bytes(of: stored) }
            do {
                _ = try await store.bytes(of: stored)
            } catch let error as FileStoreError {
                #expect("\(error)".contains("no longer holds data/all.bin") && "\(error)".contains("DROVER_FILE_STORE_DAYS"))
            }
            // Every blob expires unless used again.
            let kept = try await store.put(Data("x".utf8), path: "x")
            let ttl = try await redis.send(["TTL", "drover:blob:\(kept.sha256)"]).int ?? -1
            #expect(ttl > 0 && ttl <= Int64(FileStoreLimits.defaultRetentionSeconds))
        }
    }

    @Test("a file over the limit and a session over its total are refused, naming the limit and the setting")
    func limits() async throws {
        try await withRedisClient { redis, _ in
            let store = FileStore(redis: redis, limits: FileStoreLimits(maxFileBytes: 10, maxSessionBytes: 15))
            do {
                _ = try await store.put(Data(count: 11), path: "big.bin")
                Issue.record("an 11-byte file passed a 10-byte limit")
            } catch let error as FileStoreError {
                #expect("\(error)".contains("big.bin is 11 bytes") && "\(error)".contains("DROVER_FILE_STORE_MAX_BYTES"))
            }
            let folder = scratchDirectory("filestore-limits")
            defer { try? FileManager.default.removeItem(at: folder) }
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(count: 8).write(to: folder.appendingPathComponent("a"))
            try Data(count: 8).write(to: folder.appendingPathComponent("b"))
            do {
                _ = try await store.upload([(folder, "in")])
                Issue.record("16 bytes passed a 15-byte session limit")
            } catch let error as FileStoreError {
                #expect("\(error)".contains("DROVER_FILE_STORE_SESSION_BYTES"))
            }
            // Nothing was sent before the sizes were checked.
            #expect(try await redis.scanKeys(matching: "drover:blob:*").isEmpty)
            #expect(throws: FileStoreLimits.Invalid.self) {
                try FileStoreLimits.fromEnvironment(["DROVER_FILE_STORE_MAX_BYTES": "99999999999999999999"])
            }
            #expect(throws: FileStoreLimits.Invalid.self) { try FileStoreLimits.fromEnvironment(["DROVER_FILE_STORE_DAYS": "-1"]) }
            #expect(try FileStoreLimits.fromEnvironment(["DROVER_FILE_STORE_DAYS": "2"]).retentionSeconds == 172_800)
        }
    }

    @Test("a manifest path that climbs out is refused before anything is written; a link in a job's folder is not followed")
    func hostSidePaths() async throws {
        try await withRedisClient { redis, _ in
            let store = FileStore(redis: redis)
            let root = scratchDirectory("filestore-paths")
            defer { try? FileManager.default.removeItem(at: root) }
            let staging = root.appendingPathComponent("staged")
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
            let good = try await store.put(Data("fine".utf8), path: "ok.txt")
            for path in ["../escaped.txt", "a/../../escaped.txt", "/etc/escaped.txt", "a//b", "./a", ""] {
                await #expect(throws: WorkspacePath.Invalid.self, "\(path)") { try await store.write([good.moved(to: path)], under: staging) }
            }
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("escaped.txt").path))
            #expect(try await store.write([good], under: staging) == 1)
            #expect(try String(contentsOf: staging.appendingPathComponent("ok.txt"), encoding: .utf8) == "fine")

            // A job folder with a link to a host file: the link is left behind, the file beside it goes.
            let secret = root.appendingPathComponent("host-secret")
            try Data("host only".utf8).write(to: secret)
            let folder = root.appendingPathComponent("submission")
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try Data("mine".utf8).write(to: folder.appendingPathComponent("sub/work.txt"))
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("leak"), withDestinationURL: secret)
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("leakdir"), withDestinationURL: root)
            let uploaded = try await store.upload([(folder, "./submission/")])
            #expect(uploaded.map(\.path) == ["submission/sub/work.txt"])
            #expect(try await store.bytes(of: uploaded[0]) == Data("mine".utf8))
        }
    }

    @Test("manifests: the seed, files added later in order, and what a turn sent back; removed with the session")
    func manifests() async throws {
        try await withRedisClient { redis, _ in
            let files = SessionFiles(store: FileStore(redis: redis))
            let session = SessionID.make()
            #expect(try await files.seed(session).isEmpty)
            #expect(try await files.exports(session) == nil)
            let a = try await files.store.put(Data("a".utf8), path: "a.txt")
            try await files.setSeed(session, [a])
            #expect(try await files.seed(session) == [a])
            for (index, name) in ["sesrsc_3", "sesrsc_1", "sesrsc_2"].enumerated() {
                try await files.addIncoming(session, resourceID: name, file: a.moved(to: "in/\(index).txt"))
            }
            #expect(try await files.incoming(session).map(\.resourceID) == ["sesrsc_3", "sesrsc_1", "sesrsc_2"])
            #expect(try await files.discardIncoming(session, resourceID: "sesrsc_1"))
            #expect(try await !files.discardIncoming(session, resourceID: "sesrsc_1"))
            try await files.setWanted(session, paths: ["out.json"])
            #expect(try await files.wanted(session) == ["out.json"])
            try await files.setExports(session, [SessionFiles.Export(path: "out.json", files: [a.moved(to: "out.json")])])
            #expect(try await files.exports(session)?.first?.files.first?.sha256 == a.sha256)
            try await files.remove(session)
            let seed = try await files.seed(session)
            let incoming = try await files.incoming(session)
            let wanted = try await files.wanted(session)
            #expect(seed.isEmpty && incoming.isEmpty && wanted.isEmpty)
            #expect(try await files.exports(session) == nil)
        }
    }
}

@Suite("Files across hosts, in the sandbox", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxFileStoreTests {
    @Test("a session's workspace starts with its seed on a hands root that never saw the files; what a turn sends back skips planted links")
    func seedAndExports() async throws {
        try await withRedisClient { redis, _ in
            let files = SessionFiles(store: FileStore(redis: redis))
            let root = scratchDirectory("filestore-sandbox")
            var settings = SandboxPoolSettings()
            settings.sessionFiles = files
            let toolset = AgentToolset(root: root, pool: settings)
            defer {
                Task {
                    await toolset.pool.shutdown()
                    await removeHandsRoot(root)
                }
            }
            let session = SessionID.make()
            let script = try await files.store.put(Data("#!/bin/sh\necho ran\n".utf8), path: "tools/run.sh", executable: true)
            try await files.setSeed(session, [script])
            try await files.setWanted(session, paths: ["out/result.txt", "leak.txt", "never.txt", "out"])
            func bash(_ command: String) async throws -> ToolResult {
                try await toolset.execute(
                    name: "bash", input: .object(["command": .string(command)]),
                    context: ToolContext(session: session, fence: SessionFence(session: session, epoch: 1), deadline: .now + .seconds(120)))
            }
            let ran = try await bash(
                "/workspace/tools/run.sh && mkdir -p /workspace/out && echo result > /workspace/out/result.txt && ln -s /etc/passwd /workspace/leak.txt && ln -s /etc/passwd /workspace/out/passwd"
            )
            #expect(!ran.isError && ran.content.compactMap(\.text).joined().contains("ran"), "\(ran)")

            await toolset.turnEnding(session: session)
            let exports = try #require(try await files.exports(session))
            #expect(exports.map(\.path) == ["out/result.txt", "leak.txt", "never.txt", "out"])
            #expect(try await files.store.bytes(of: try #require(exports[0].files.first)) == Data("result\n".utf8))
            // The planted link is refused and says why; nothing of the host file was stored.
            #expect(exports[1].files.isEmpty && (exports[1].refused ?? "").contains("link"), "\(exports[1])")
            #expect(exports[2].files.isEmpty && exports[2].refused == nil)
            // A directory sends its regular files, never the link inside it.
            #expect(exports[3].files.map(\.path) == ["out/result.txt"], "\(exports[3])")
            // The host file's digest, computed apart from the store.
            let digest = String(try await runProgram("/usr/bin/sha256sum", ["/etc/passwd"]).output.prefix(64))
            let blobs = try await redis.scanKeys(matching: "drover:blob:*")
            #expect(digest.count == 64 && !blobs.contains("drover:blob:" + digest))
        }
    }
}
