import DroverBrain
import DroverCore
import DroverTesting
import DroverTools
import Foundation
import Testing

@testable import DroverHands

private struct ToolsetFixture {
    let toolset: AgentToolset
    let root: URL
    let session = SessionID.make()

    init() {
        root = scratchDirectory("toolset")
        var limits = SandboxLimits()
        // Generous: a test about timeouts sets its own `timeout_ms`.
        limits.wallClock = .seconds(300)
        toolset = AgentToolset(root: root, limits: limits)
    }

    func call(_ name: String, _ input: [String: JSONValue], epoch: Int64 = 1) async throws -> ToolResult {
        try await toolset.execute(
            name: name, input: .object(input),
            context: ToolContext(
                session: session, fence: SessionFence(session: session, epoch: epoch), deadline: .now + .seconds(300)))
    }

    func text(_ result: ToolResult) -> String {
        result.content.compactMap(\.text).joined()
    }

    func cleanUp() { Task { [root] in await removeHandsRoot(root) } }
}

@Suite("Agent toolset in the sandbox", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct AgentToolsetTests {
    @Test("bash keeps cd and exports between calls; restart and a timeout start afresh")
    func bashState() async throws {
        let f = ToolsetFixture()
        defer { f.cleanUp() }
        _ = try await f.call("bash", ["command": .string("mkdir -p sub && cd sub && export GRADE=A")])
        let state = try await f.call("bash", ["command": .string("pwd; echo grade=$GRADE")])
        #expect(f.text(state).contains("/workspace/sub") && f.text(state).contains("grade=A"), "\(f.text(state))")
        let failed = try await f.call("bash", ["command": .string("exit 3")])
        #expect(failed.isError && f.text(failed).contains("exit code 3"), "\(f.text(failed))")
        _ = try await f.call("bash", ["restart": .bool(true)])
        let fresh = try await f.call("bash", ["command": .string("pwd; echo grade=$GRADE")])
        #expect(f.text(fresh).contains("/workspace\n") && f.text(fresh).contains("grade=\n"), "\(f.text(fresh))")
        let slow = try await f.call("bash", ["command": .string("sleep 5"), "timeout_ms": .number(300)])
        #expect(slow.isError && f.text(slow).contains("wall-clock limit"))
        let bad = try await f.call("bash", [:])
        #expect(bad.isError && f.text(bad).contains("input.command"))
    }

    @Test("bash is one shell per session: functions and plain variables persist; a timeout or exit starts a new shell")
    func oneShell() async throws {
        let f = ToolsetFixture()
        defer { f.cleanUp() }
        _ = try await f.call("bash", ["command": .string("grade() { echo \"graded $1: $((score * 2))\"; }; score=21; set -o pipefail")])
        let used = try await f.call("bash", ["command": .string("grade alice; echo pipefail=$(set -o | grep -c 'pipefail.*on')")])
        #expect(f.text(used) == "graded alice: 42\npipefail=1\n", "\(f.text(used))")
        let pid = try #require(await f.toolset.pool.checkout(f.session).pid)
        _ = try await f.call("bash", ["command": .string("true")])
        #expect(try await f.toolset.pool.checkout(f.session).pid == pid, "a call started a new sandbox")

        let slow = try await f.call("bash", ["command": .string("sleep 30"), "timeout_ms": .number(300)])
        #expect(slow.isError && f.text(slow).contains("wall-clock limit"))
        let fresh = try await f.call("bash", ["command": .string("type grade 2>&1; echo score=$score")])
        #expect(f.text(fresh).contains("not found") && f.text(fresh).contains("score=\n"), "\(f.text(fresh))")
        #expect(try await f.toolset.pool.checkout(f.session).pid != pid, "the timed-out shell was not replaced")

        _ = try await f.call("bash", ["command": .string("mkdir -p d && cd d && export KEEP=1")])
        let exited = try await f.call("bash", ["command": .string("echo bye; exit 5")])
        #expect(exited.isError && f.text(exited).contains("bye") && f.text(exited).contains("exit code 5"), "\(f.text(exited))")
        let after = try await f.call("bash", ["command": .string("pwd; echo KEEP=$KEEP")])
        #expect(f.text(after) == "/workspace/d\nKEEP=1\n", "\(f.text(after))")
        await f.toolset.pool.shutdown()
    }

    @Test("write, read with a view range, edit with exact-match rules, glob and grep")
    func files() async throws {
        let f = ToolsetFixture()
        defer { f.cleanUp() }
        let wrote = try await f.call("write", ["file_path": .string("src/grade.py"), "content": .string("a = 1\nb = 2\nb = 2\nc = 'it''s'\n")])
        #expect(!wrote.isError, "\(f.text(wrote))")
        #expect(try String(contentsOf: f.toolset.workspace(f.session).appendingPathComponent("src/grade.py"), encoding: .utf8).hasPrefix("a = 1\n"))
        let lines = try await f.call("read", ["file_path": .string("/workspace/src/grade.py"), "view_range": .array([.number(2), .number(3)])])
        #expect(f.text(lines).contains("2\tb = 2") && !f.text(lines).contains("a = 1"))
        let twice = try await f.call("edit", ["file_path": .string("src/grade.py"), "old_string": .string("b = 2"), "new_string": .string("b = 3")])
        #expect(twice.isError && f.text(twice).contains("2 times"))
        let missing = try await f.call("edit", ["file_path": .string("src/grade.py"), "old_string": .string("zzz"), "new_string": .string("y")])
        #expect(missing.isError && f.text(missing).contains("not found"))
        let once = try await f.call("edit", ["file_path": .string("src/grade.py"), "old_string": .string("a = 1"), "new_string": .string("a = 10")])
        #expect(!once.isError, "\(f.text(once))")
        let all = try await f.call(
            "edit",
            ["file_path": .string("src/grade.py"), "old_string": .string("b = 2"), "new_string": .string("b = 3"), "replace_all": .bool(true)])
        #expect(!all.isError)
        #expect(
            try String(contentsOf: f.toolset.workspace(f.session).appendingPathComponent("src/grade.py"), encoding: .utf8)
                == "a = 10\nb = 3\nb = 3\nc = 'it''s'\n")
        let found = try await f.call("glob", ["pattern": .string("**/*.py")])
        #expect(f.text(found).contains("src/grade.py"))
        let grep = try await f.call("grep", ["pattern": .string("b = [0-9]")])
        #expect(f.text(grep).contains("grade.py:2:b = 3"))
        let none = try await f.call("grep", ["pattern": .string("nothing-here")])
        #expect(!none.isError && f.text(none).contains("(no matches)"))
        for (tool, input, field) in [
            ("read", [String: JSONValue](), "file_path"), ("write", ["file_path": .string("x")], "content"),
            ("read", ["file_path": .string("x"), "view_range": .array([.number(3), .number(1)])], "view_range"),
            ("glob", [:], "pattern"), ("nope", [:], "unknown tool"),
        ] {
            let result = try await f.call(tool, input)
            #expect(result.isError && f.text(result).contains(field), "\(tool): \(f.text(result))")
        }
    }

    @Test("a symlink planted in the workspace cannot make the file tools read the host")
    func symlinkEscape() async throws {
        let f = ToolsetFixture()
        defer { f.cleanUp() }
        let secret = f.root.appendingPathComponent("host-secret.txt")
        try FileManager.default.createDirectory(at: f.root, withIntermediateDirectories: true)
        try "host secret".write(to: secret, atomically: true, encoding: .utf8)
        _ = try await f.call("bash", ["command": .string("ln -s \(secret.path) leak.txt")])
        let read = try await f.call("read", ["file_path": .string("leak.txt")])
        #expect(read.isError && !f.text(read).contains("host secret"))
    }

    @Test("a stale epoch is refused, and a newer one ends what older epochs still run")
    func fencing() async throws {
        let f = ToolsetFixture()
        defer { f.cleanUp() }
        let old = Task { try await f.call("bash", ["command": .string("touch running; sleep 3600; echo finished")], epoch: 1) }
        // Taken over only once the old call runs (a loaded machine can take seconds to provision).
        let marker = f.toolset.workspace(f.session).appendingPathComponent("running")
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: marker.path), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Waiting for the old call would take its hour.
        let newer = try await finishing(within: .seconds(60)) { try await f.call("bash", ["command": .string("echo takeover")], epoch: 2) }
        #expect(f.text(newer).contains("takeover"))
        let ended = try await finishing(within: .seconds(60)) { await old.result }
        #expect(throws: CancellationError.self) { try ended.get() }
        let stale = try await f.call("bash", ["command": .string("echo zombie")], epoch: 1)
        #expect(stale.isError && f.text(stale).contains("older than the session's"))
    }
}

@Suite("Fence book")
struct FenceBookTests {
    @Test("a call admitted before a takeover, but not yet started, does not start after it")
    func admittedThenOvertaken() async throws {
        let fences = FenceBook()
        let session = SessionID.make()
        let ran = Locked(false)
        guard case .admitted = await fences.admit(SessionFence(session: session, epoch: 1)) else {
            Issue.record("epoch 1 refused")
            return
        }
        // Meanwhile (the old call still waits for its sandbox) a newer worker takes the session.
        guard case .admitted = await fences.admit(SessionFence(session: session, epoch: 2)) else {
            Issue.record("epoch 2 refused")
            return
        }
        let late = await fences.start(SessionFence(session: session, epoch: 1)) {
            ran.withLock { $0 = true }
            return .text("ran")
        }
        guard case .stale(let current) = late else {
            Issue.record("the overtaken call started")
            return
        }
        #expect(current == 2)
        guard case .started(let task) = await fences.start(SessionFence(session: session, epoch: 2), { .text("newer") }) else {
            Issue.record("the current epoch was refused")
            return
        }
        #expect(try await task.value.content == [.text("newer")])
        #expect(!ran.value)
    }
}
