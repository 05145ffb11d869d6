import ArgumentParser
import DroverBrain
import DroverCore
import DroverHands
import DroverModelStub
import DroverQueue
import DroverRuntime
import DroverTools
import Foundation

/// The worker's options and construction, shared by `drover worker` and `drover serve`.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Sessions run at once.") var concurrency = 4
    @Option(help: "Lease length in seconds; heartbeats renew it every third.") var leaseSeconds = 30
    @Option(help: "Seconds running turns get to finish on SIGTERM before they are handed back.") var drainSeconds = 30
    @Flag(help: "Let agents start stdio MCP servers: commands that run on this host, outside the sandbox.") var mcpStdio = false
    @Option(help: "Model for sessions created without an agent snapshot.") var model = "claude-sonnet-4-5"
    @Option(
        help: ArgumentHelp(
            "The queue to claim turns from: \(TurnQueue.defaultName.rawValue) (the API's sessions) or a job's, jobs.NAME, to help a `drover run` from another host.",
            valueName: "name"))
    var queue = TurnQueue.defaultName.rawValue
    @Option(
        help: ArgumentHelp(
            "Answer from this scripted-model file (docs/scripted-model.md) instead of a model, even with ANTHROPIC_API_KEY set.",
            valueName: "file"))
    var modelScript: String?
    @Option(help: "Tools: sandbox (bubblewrap; the default where it is installed) or in-process (echo and sleep only).")
    var hands = Sandbox.bubblewrap == nil ? "in-process" : "sandbox"

    func validate() throws {
        do {
            _ = try QueueName(queue)
        } catch {
            throw ValidationError("--queue: \(error)")
        }
        guard hands == "sandbox" || hands == "in-process" else { throw ValidationError("--hands: use sandbox or in-process") }
        if hands == "sandbox" && Sandbox.bubblewrap == nil {
            throw ValidationError("--hands sandbox needs bubblewrap: apt-get install -y bubblewrap")
        }
    }

    /// The model sessions call: `--model-script` or, with no ANTHROPIC_API_KEY, the built-in
    /// script, both on the scripted model in this process; otherwise the Messages API at
    /// ANTHROPIC_BASE_URL. Stop its `scripted` server when the worker has drained.
    func resolveModel(environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> WorkerModel {
        if modelScript == nil, let configuration = AnthropicConfiguration(environment: environment) {
            return WorkerModel(
                configuration: configuration, label: "the Messages API at \(configuration.baseURL)",
                health: .object(["kind": .string("anthropic"), "base_url": .string(configuration.baseURL)]), scripted: nil)
        }
        let script: ModelScript
        let source: String
        if let path = modelScript {
            do {
                script = try ModelScript.load(path: path)
            } catch let error as ModelScript.ScriptError {
                throw ValidationError("--model-script: \(error)")
            }
            source = path
        } else {
            script = ModelScript.builtIn
            source = "built-in"
        }
        let server = try await ScriptedModelServer.start(script: script)
        let why = modelScript == nil ? "the built-in script, as no ANTHROPIC_API_KEY is set" : "the script \(source)"
        return WorkerModel(
            configuration: server.clientConfiguration, label: "the scripted model (\(why); not a real model, see docs/scripted-model.md)",
            health: .object(["kind": .string("scripted"), "script": .string(source)]), scripted: server)
    }

    /// The worker, its MCP connections and its sandbox toolset: stop both when the worker has
    /// drained (stdio servers and sandboxes are this process's children).
    /// `apiAddress`: where this process's API listens, if it runs one (`drover serve`): no
    /// sandbox's egress may reach it.
    func makeWorker(
        runtime: RuntimeEnvironment, model configuration: AnthropicConfiguration, apiAddress: String? = nil
    ) throws -> (Worker, MCPConnections, AgentToolset?) {
        // One gate and one token source for the sandboxes, MCP connections and web tools alike.
        let gate = try runtime.egressGate(apiAddress: apiAddress)
        let tokens = try runtime.serverTokens(gate: gate)
        let toolset =
            hands == "sandbox"
            ? AgentToolset(
                root: try runtime.handsRoot(), limits: try SandboxLimits.fromEnvironment(),
                pool: try runtime.sandboxPoolSettings(gate: gate), egressRecorder: runtime.egressRecorder(),
                credentials: runtime.credentialSource(), repositories: runtime.repositorySource(),
                web: try runtime.webTools(gate: gate, bearer: tokens))
            : nil
        let hand: any Hand = toolset ?? InProcessHand()
        let mcp = MCPConnections(allowStdio: mcpStdio, access: MCPAccess(gate: gate, bearer: tokens))
        let runner = TurnRunner(
            log: try runtime.sessionLog, model: AnthropicMessagesClient(configuration: configuration), hand: hand,
            deltas: DeltaPublisher(redis: runtime.redis), defaultAgent: AgentSnapshot(model: model),
            mcp: mcp, context: try ContextPolicy.fromEnvironment()
        )
        var options = Worker.Options()
        options.concurrency = concurrency
        options.leaseTTL = .seconds(leaseSeconds)
        options.drainTimeout = .seconds(drainSeconds)
        options.queue = try QueueName(queue)
        return (Worker(queue: TaskQueue(redis: runtime.redis), runner: runner, options: options), mcp, toolset)
    }
}

/// Where a worker's sessions get their answers, and how to say so.
struct WorkerModel: Sendable {
    let configuration: AnthropicConfiguration
    /// For the first line of output.
    let label: String
    /// For `/health`.
    let health: JSONValue
    /// The scripted model this process serves, if that is the model.
    let scripted: ScriptedModelServer?
}
