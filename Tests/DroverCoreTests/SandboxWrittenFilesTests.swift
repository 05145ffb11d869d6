import DroverCore
import DroverTesting
import Foundation
import Testing

/// Issue 12: the host reads a job's output file and copies `collect:` files out of a workspace a
/// sandbox wrote. A link planted there once turned a host file into report columns or copies.
@Suite("Reading what a sandbox wrote")
struct SandboxWrittenFilesTests {
    let root = scratchDirectory("written")
    var workspace: URL { root.appendingPathComponent("ws") }
    var secret: URL { root.appendingPathComponent("host-secret.json") }

    init() throws {
        try FileManager.default.createDirectory(at: workspace.appendingPathComponent("out"), withIntermediateDirectories: true)
        try #"{"token": "host-only"}"#.write(to: secret, atomically: true, encoding: .utf8)
        try #"{"score": 7}"#.write(to: workspace.appendingPathComponent("out/result.json"), atomically: true, encoding: .utf8)
    }

    @Test("a regular file is read; a missing one is nil")
    func plain() throws {
        let files = SandboxWrittenFiles(root: workspace)
        #expect(try files.read("out/result.json").map { String(decoding: $0, as: UTF8.self) } == #"{"score": 7}"#)
        #expect(try files.read("out/none.json") == nil)
        try? FileManager.default.removeItem(at: root)
    }

    @Test("links are never followed: as the file, as a directory in the path, or with ..")
    func links() throws {
        let files = SandboxWrittenFiles(root: workspace)
        try FileManager.default.createSymbolicLink(atPath: workspace.appendingPathComponent("linked.json").path, withDestinationPath: secret.path)
        try FileManager.default.createSymbolicLink(atPath: workspace.appendingPathComponent("up").path, withDestinationPath: root.path)
        #expect(throws: SandboxWrittenFiles.Refused.self) { try files.read("linked.json") }
        #expect(throws: SandboxWrittenFiles.Refused.self) { try files.read("up/host-secret.json") }
        #expect(throws: SandboxWrittenFiles.Refused.self) { try files.read("../host-secret.json") }
        #expect(throws: SandboxWrittenFiles.Refused.self) { try files.read("out/../../host-secret.json") }
        let copied = root.appendingPathComponent("copy")
        #expect(throws: SandboxWrittenFiles.Refused.self) { try files.copy("up", to: copied) }
        #expect(!FileManager.default.fileExists(atPath: copied.appendingPathComponent("host-secret.json").path))
        try? FileManager.default.removeItem(at: root)
    }

    @Test("a FIFO does not block, and a file past the limit is refused")
    func specialFiles() throws {
        #expect(mkfifo(workspace.appendingPathComponent("pipe").path, 0o600) == 0)
        #expect(throws: SandboxWrittenFiles.Refused.self) { try SandboxWrittenFiles(root: workspace).read("pipe") }
        try Data(count: 4096).write(to: workspace.appendingPathComponent("big"))
        #expect(throws: SandboxWrittenFiles.Refused.self) { try SandboxWrittenFiles(root: workspace, maxBytes: 1000).read("big") }
        try? FileManager.default.removeItem(at: root)
    }

    @Test("a directory copy takes files and subdirectories and skips links and FIFOs")
    func directoryCopy() throws {
        let out = workspace.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try "deep".write(to: out.appendingPathComponent("sub/deep.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: out.appendingPathComponent("secret.json").path, withDestinationPath: secret.path)
        try FileManager.default.createSymbolicLink(atPath: out.appendingPathComponent("rootlink").path, withDestinationPath: root.path)
        #expect(mkfifo(out.appendingPathComponent("fifo").path, 0o600) == 0)
        let destination = root.appendingPathComponent("report/files/out")
        #expect(try SandboxWrittenFiles(root: workspace).copy("out", to: destination))
        let copied = try FileManager.default.subpathsOfDirectory(atPath: destination.path).sorted()
        #expect(copied == ["result.json", "sub", "sub/deep.txt"], "\(copied)")
        #expect(try !SandboxWrittenFiles(root: workspace).copy("nothing", to: root.appendingPathComponent("report/x")))
        try? FileManager.default.removeItem(at: root)
    }
}
