import DroverCore
import DroverEgress
import DroverFileStore
import DroverTools
import Foundation

/// The built-in toolset `agent_toolset_20260401` (`bash`, `read`, `write`, `edit`, `glob`,
/// `grep`) over the session's sandbox from the pool, on the session's workspace.
///
/// The file tools run inside the sandbox too (each in a subshell of the session's shell): a
/// symlink the agent planted in its workspace can then only ever point at what the sandbox
/// itself may see. `bash` runs in the session's one shell, so `cd`, variables, exports and
/// functions persist; `restart`, or a timeout, starts a new shell.
///
/// Fenced (I1, docs/ARCHITECTURE.md): a call under an epoch older than one already seen for the session is refused,
/// and a newer epoch cancels the calls older epochs still have running, which ends the
/// processes they started.
public final class AgentToolset: Hand {
    public let root: URL
    public let limits: SandboxLimits
    public let pool: SandboxPool
    private let fences = FenceBook()
    /// Keeps what each call's sandbox asked of the egress proxy (the worker writes it to SQLite).
    public let egressRecorder: (@Sendable (EgressUsage) async -> Void)?
    /// The session's `environment_variable` credentials, read afresh for each call (so that an
    /// archived credential or a changed `vault_ids` counts at once). Only the proxy gets the
    /// secrets; the sandbox gets their placeholders.
    public let credentials: (@Sendable (SessionID) async throws -> [EgressSecret])?
    /// The session's git repositories (`github_repository` resources), read afresh for each call.
    public let repositories: (@Sendable (SessionID) async throws -> [SandboxRepository])?
    /// The clones tried, by session and resource, with the token each was tried with: a clone
    /// that failed is not tried again until its token changes.
    private let clonesTried = Locked<[String: String]>([:])
    /// `web_fetch` and `web_search`, which the worker runs itself.
    public let web: WebTools

    /// `root` is the hands root (see `HandsLayout`).
    public init(
        root: URL, limits: SandboxLimits = SandboxLimits(), pool settings: SandboxPoolSettings = SandboxPoolSettings(),
        egressRecorder: (@Sendable (EgressUsage) async -> Void)? = nil,
        credentials: (@Sendable (SessionID) async throws -> [EgressSecret])? = nil,
        repositories: (@Sendable (SessionID) async throws -> [SandboxRepository])? = nil, web: WebTools? = nil
    ) {
        self.web = web ?? WebTools(gate: settings.egressGate)
        self.egressRecorder = egressRecorder
        self.credentials = credentials
        self.repositories = repositories
        self.root = root.standardizedFileURL
        self.limits = limits
        var settings = settings
        settings.limits = limits
        pool = SandboxPool(root: self.root, settings: settings)
    }

    public func workspace(_ session: SessionID) -> URL {
        pool.workspace(session)
    }

    public var tools: [ModelToolDefinition] {
        func schema(_ properties: [String: JSONValue], required: [String]) -> JSONValue {
            .object(["type": .string("object"), "properties": .object(properties), "required": .array(required.map(JSONValue.string))])
        }
        let string: JSONValue = .object(["type": .string("string")])
        return [
            ModelToolDefinition(
                name: "bash", description: "Run a bash command in the session's sandbox (working directory and exports persist between calls).",
                inputSchema: schema(
                    ["command": string, "restart": .object(["type": .string("boolean")]), "timeout_ms": .object(["type": .string("integer")])],
                    required: [])),
            ModelToolDefinition(
                name: "read", description: "Read a file, optionally lines view_range [start, end] (1-based).",
                inputSchema: schema(
                    ["file_path": string, "view_range": .object(["type": .string("array"), "items": .object(["type": .string("integer")])])],
                    required: ["file_path"])),
            ModelToolDefinition(
                name: "write", description: "Write a file, creating directories.",
                inputSchema: schema(["file_path": string, "content": string], required: ["file_path", "content"])),
            ModelToolDefinition(
                name: "edit", description: "Replace old_string with new_string in a file; old_string must match exactly once unless replace_all.",
                inputSchema: schema(
                    ["file_path": string, "old_string": string, "new_string": string, "replace_all": .object(["type": .string("boolean")])],
                    required: ["file_path", "old_string", "new_string"])),
            ModelToolDefinition(
                name: "glob", description: "List files matching a glob pattern (** recurses).",
                inputSchema: schema(["pattern": string, "path": string], required: ["pattern"])),
            ModelToolDefinition(
                name: "grep", description: "Search file contents for an extended regular expression.",
                inputSchema: schema(["pattern": string, "path": string], required: ["pattern"])),
        ] + WebTools.definitions
    }

    public func prepare(session: SessionID) async {
        _ = try? await pool.checkout(session)
    }

    public func prepare(session: SessionID, environment: EnvironmentConfig) async {
        _ = try? await pool.checkout(session, environment: environment)
    }

    public func execute(name: String, input: JSONValue, context: ToolContext) async throws -> ToolResult {
        switch await fences.admit(context.fence) {
        case .stale(let current):
            return Self.refusal(context.fence, current: current)
        case .admitted:
            break
        }
        let fields = input.objectValue ?? [:]
        if name == "web_fetch" || name == "web_search" { return await runWebTool(name, fields, context) }
        let sandbox: Sandbox
        do {
            sandbox = try await pool.checkout(context.session, environment: context.environment)
            try await configureEgress(context, sandbox)
            if let failure = try await cloneRepositories(context.session, sandbox) { return .text(failure, isError: true) }
            var undelivered: [String] = []
            if let files = pool.settings.sessionFiles {
                undelivered = await IncomingFiles(layout: pool.layout, files: files).deliver(context.session, into: sandbox)
            }
            if !undelivered.isEmpty {
                return .text(
                    "files added to the session could not be put in place, and were dropped: " + undelivered.joined(separator: "; "), isError: true)
            }
        } catch let error as CancellationError {
            throw error
        } catch {
            return .text("\(error)", isError: true)
        }
        // Admitted again as it starts: a takeover while this call waited for its sandbox
        // found nothing of it to end, so it must not start now.
        let started = await fences.start(context.fence) { [self] () throws -> ToolResult in
            switch name {
            case "bash": return try await bash(fields, sandbox)
            case "read": return try await read(fields, sandbox)
            case "write": return try await write(fields, sandbox)
            case "edit": return try await edit(fields, sandbox)
            case "glob": return try await glob(fields, sandbox)
            case "grep": return try await grep(fields, sandbox)
            default: return .text("unknown tool '\(name)'; the toolset has bash, read, write, edit, glob, grep, web_fetch, web_search", isError: true)
            }
        }
        let task: Task<ToolResult, Error>
        switch started {
        case .stale(let current):
            return Self.refusal(context.fence, current: current)
        case .started(let running):
            task = running
        }
        let outcome: Result<ToolResult, Error>
        do {
            outcome = .success(
                try await withTaskCancellationHandler {
                    try await task.value
                } onCancel: {
                    task.cancel()
                })
        } catch {
            outcome = .failure(error)
        }
        // Counted even when the call failed or was cancelled: what went out, went out.
        if let egressRecorder, let usage = sandbox.egress?.route.drainUsage(), !usage.isEmpty { await egressRecorder(usage) }
        return try outcome.get()
    }

    /// `web_fetch` under the session environment's policy (what it asked is counted with the
    /// sandbox's egress), or `web_search` at the operator's backend.
    private func runWebTool(_ name: String, _ fields: [String: JSONValue], _ context: ToolContext) async -> ToolResult {
        guard name == "web_fetch" else { return await web.search(fields, session: context.session) }
        let outcome = await web.fetch(fields, policy: context.environment.network, mcpHosts: context.mcpHosts)
        if let egressRecorder, !outcome.usage.isEmpty {
            var entries: [EgressUsage.Key: EgressUsage.Counts] = [:]
            for (key, counts) in outcome.usage {
                var total = entries[key] ?? EgressUsage.Counts()
                total.requests += counts.requests
                total.bytesReceived += counts.bytesReceived
                entries[key] = total
            }
            await egressRecorder(EgressUsage(session: context.session, entries: entries))
        }
        return outcome.result
    }

    /// Gives the sandbox's egress route the agent's MCP hosts (for `allow_mcp_servers`) and the
    /// session's credentials, and its shell their placeholders. A sandbox with no network gets
    /// none of it: nothing could carry them out.
    private func configureEgress(_ context: ToolContext, _ sandbox: Sandbox) async throws {
        guard let egress = sandbox.egress else { return }
        egress.route.assign(session: context.session, mcpHosts: context.mcpHosts)
        guard let credentials else { return }
        let secrets: [EgressSecret]
        do {
            secrets = try await credentials(context.session)
        } catch {
            throw CredentialsUnavailable(reason: "\(error)")
        }
        if !secrets.isEmpty, pool.settings.egressAuthority == nil {
            throw CredentialsUnavailable(reason: "this worker has no egress authority, so it cannot put a secret into an HTTPS request")
        }
        egress.route.use(secrets: secrets)
        await sandbox.use(credentialVariables: Dictionary(secrets.map { ($0.variable, $0.placeholder) }, uniquingKeysWith: { first, _ in first }))
    }

    public func turnEnding(session: SessionID) async {
        guard let files = pool.settings.sessionFiles else { return }
        guard let wanted = try? await files.wanted(session), !wanted.isEmpty else { return }
        let exports = await WorkspaceExports(layout: pool.layout, store: files.store).export(wanted, of: session)
        // Unrecorded, the job reads no output and says the agent wrote none; the append of the
        // idle status that follows fails on the same outage and the turn is run again.
        try? await files.setExports(session, exports)
    }

    /// Clones the session's repositories not yet tried (with their current tokens), and gives
    /// its sandbox's route their git requests, so that fetch and push work from the sandbox when
    /// it has a network. A failed clone is this call's error result, once: the agent learns why,
    /// and its next calls go ahead without the repository.
    private func cloneRepositories(_ session: SessionID, _ sandbox: Sandbox) async throws -> String? {
        guard let repositories else { return nil }
        let listed = try await repositories(session)
        sandbox.egress?.route.use(repositories: listed.compactMap(\.egress))
        var failures: [String] = []
        for repository in listed {
            let key = "\(session.rawValue)/\(repository.id)"
            let digest = repository.token.map { String($0.hashValue) } ?? "-"
            guard clonesTried.withLock({ $0[key] }) != digest else { continue }
            clonesTried.withLock { $0[key] = digest }
            do {
                try await pool.clone(repository, for: session)
            } catch let error as CancellationError {
                clonesTried.withLock { $0[key] = nil }
                throw error
            } catch {
                failures.append("\(error)")
            }
        }
        return failures.isEmpty ? nil : failures.joined(separator: "\n")
    }

    struct CredentialsUnavailable: Error, CustomStringConvertible {
        let reason: String
        var description: String { "the session's vault credentials could not be given to its sandbox: \(reason)" }
    }

    static func refusal(_ fence: SessionFence, current: Int64) -> ToolResult {
        .text(
            "refused: this call's fence epoch \(fence.epoch) is older than the session's (\(current)); another worker owns the session", isError: true
        )
    }

    // MARK: Tools

    private func bash(_ fields: [String: JSONValue], _ sandbox: Sandbox) async throws -> ToolResult {
        if fields["restart"] == .bool(true) {
            await sandbox.restartShell()
            if fields["command"] == nil { return .text("shell restarted") }
        }
        guard case .string(let command)? = fields["command"] else {
            return .text("bash: input.command is required (a string), unless restart is true", isError: true)
        }
        var wallClock: Duration?
        if let value = fields["timeout_ms"] {
            guard case .number(let ms) = value, ms >= 1, ms.isFinite else {
                return .text("bash: input.timeout_ms must be a positive integer", isError: true)
            }
            // Clamped before the conversion: Int64(_:) traps past Int64.max, and a model can ask for 1e300.
            wallClock = min(.milliseconds(Int64(min(ms, 1e12))), limits.wallClock)
        }
        let run = try await sandbox.runInShell(command, wallClock: wallClock)
        let output = run.output.isEmpty ? "(no output)" : run.output
        return .text(run.exitCode == 0 ? output : "\(output)\n[exit code \(run.exitCode)]", isError: run.exitCode != 0)
    }

    private func read(_ fields: [String: JSONValue], _ sandbox: Sandbox) async throws -> ToolResult {
        guard let path = fields["file_path"]?.stringValue, !path.isEmpty else {
            return .text("read: input.file_path is required (a string)", isError: true)
        }
        var range = ""
        if let value = fields["view_range"] {
            guard case .array(let bounds) = value, bounds.count == 2, let start = bounds[0].intValue, let end = bounds[1].intValue,
                start >= 1, end == -1 || end >= start
            else { return .text("read: input.view_range must be [start, end], 1-based, end >= start or -1 for the end of the file", isError: true) }
            range = end == -1 ? "\(start),$" : "\(start),\(end)"
        }
        let file = Self.quote(path)
        let run = try await sandbox.run(
            """
            [ -f \(file) ] || { echo "read: \(Self.escaped(path)) is not a file" >&2; exit 2; }
            \(range.isEmpty ? "cat -n -- \(file)" : "cat -n -- \(file) | sed -n '\(range)p'")
            """)
        return .text(run.output, isError: run.exitCode != 0)
    }

    private func write(_ fields: [String: JSONValue], _ sandbox: Sandbox) async throws -> ToolResult {
        guard let path = fields["file_path"]?.stringValue, !path.isEmpty else {
            return .text("write: input.file_path is required (a string)", isError: true)
        }
        guard let content = fields["content"]?.stringValue else {
            return .text("write: input.content is required (a string)", isError: true)
        }
        let file = Self.quote(path)
        let run = try await sandbox.run(
            """
            mkdir -p -- "$(dirname -- \(file))" && printf '%s' '\(Data(content.utf8).base64EncodedString())' | base64 -d > \(file) \
            && echo "wrote \(content.utf8.count) bytes to \(Self.escaped(path))"
            """)
        return .text(run.output, isError: run.exitCode != 0)
    }

    private func edit(_ fields: [String: JSONValue], _ sandbox: Sandbox) async throws -> ToolResult {
        guard let path = fields["file_path"]?.stringValue, let old = fields["old_string"]?.stringValue,
            let new = fields["new_string"]?.stringValue
        else { return .text("edit: input.file_path, input.old_string and input.new_string are required (strings)", isError: true) }
        guard !old.isEmpty else { return .text("edit: input.old_string must not be empty", isError: true) }
        let all = fields["replace_all"] == .bool(true)
        let program = """
            import base64, sys
            path, old, new, every = sys.argv[1], base64.b64decode(sys.argv[2]).decode(), base64.b64decode(sys.argv[3]).decode(), sys.argv[4] == "1"
            try:
                text = open(path, encoding="utf-8").read()
            except FileNotFoundError:
                sys.exit(f"edit: {path} does not exist")
            count = text.count(old)
            if count == 0:
                sys.exit(f"edit: old_string was not found in {path}; read the file and copy the text exactly")
            if count > 1 and not every:
                sys.exit(f"edit: old_string occurs {count} times in {path}; add surrounding lines to make it unique, or set replace_all")
            open(path, "w", encoding="utf-8").write(text.replace(old, new) if every else text.replace(old, new, 1))
            print(f"replaced {count if every else 1} occurrence(s) in {path}")
            """
        let run = try await sandbox.run(
            """
            python3 -c \(Self.quote(program)) \(Self.quote(path)) '\(Data(old.utf8).base64EncodedString())' '\(Data(new.utf8).base64EncodedString())' \(all ? "1" : "0")
            """)
        return .text(run.output, isError: run.exitCode != 0)
    }

    private func glob(_ fields: [String: JSONValue], _ sandbox: Sandbox) async throws -> ToolResult {
        guard let pattern = fields["pattern"]?.stringValue, !pattern.isEmpty else {
            return .text("glob: input.pattern is required (a string)", isError: true)
        }
        let base = fields["path"]?.stringValue ?? "/workspace"
        let run = try await sandbox.run(
            """
            python3 -c 'import glob, sys; matches = sorted(glob.glob(sys.argv[1], root_dir=sys.argv[2], recursive=True)); print("\\n".join(matches) if matches else "(no matches)")' \(Self.quote(pattern)) \(Self.quote(base))
            """)
        return .text(run.output, isError: run.exitCode != 0)
    }

    private func grep(_ fields: [String: JSONValue], _ sandbox: Sandbox) async throws -> ToolResult {
        guard let pattern = fields["pattern"]?.stringValue, !pattern.isEmpty else {
            return .text("grep: input.pattern is required (a string)", isError: true)
        }
        let base = fields["path"]?.stringValue ?? "/workspace"
        let run = try await sandbox.run(
            "grep -rnE -- \(Self.quote(pattern)) \(Self.quote(base)); status=$?; [ $status -eq 1 ] && echo '(no matches)' && exit 0; exit $status")
        return .text(run.output, isError: run.exitCode != 0)
    }

    /// Single-quoted for bash.
    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "$", with: "\\$").replacingOccurrences(of: "`", with: "\\`")
    }
}

/// The newest fence seen per session, and the calls running under each.
actor FenceBook {
    enum Admission { case admitted, stale(Int64) }
    private var newest: [SessionID: Int64] = [:]
    private var running: [SessionID: [(epoch: Int64, task: Task<ToolResult, Error>)]] = [:]

    func admit(_ fence: SessionFence) -> Admission {
        let current = newest[fence.session] ?? Int64.min
        if fence.epoch < current { return .stale(current) }
        if fence.epoch > current {
            newest[fence.session] = fence.epoch
            // A takeover: end what older epochs started in this session's sandbox.
            for entry in running[fence.session] ?? [] where entry.epoch < fence.epoch { entry.task.cancel() }
            running[fence.session]?.removeAll { $0.epoch < fence.epoch }
        }
        return .admitted
    }

    enum Start { case started(Task<ToolResult, Error>), stale(Int64) }

    /// Starts `work` only if no newer epoch has come since this call was admitted, and tracks
    /// it so that a later takeover ends it. The check and the start are one step of the actor.
    func start(_ fence: SessionFence, _ work: @escaping @Sendable () async throws -> ToolResult) -> Start {
        let current = newest[fence.session] ?? Int64.min
        if fence.epoch < current { return .stale(current) }
        let task = Task { try await work() }
        running[fence.session, default: []].removeAll { $0.task.isCancelled }
        running[fence.session, default: []].append((fence.epoch, task))
        return .started(task)
    }
}
