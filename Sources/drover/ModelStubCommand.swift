import ArgumentParser
import DroverModelStub
import Foundation
import Logging
import ServiceLifecycle

struct ModelStubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-stub",
        abstract: "Serve the scripted model: the Anthropic Messages API on loopback, answering from a script.",
        discussion: """
            Everything it produces is labelled as scripted: text starts with "[scripted]", the model
            reads "scripted/<model>", and responses carry the header x-drover-scripted: 1.
            Point a worker at it with ANTHROPIC_BASE_URL=<printed URL> ANTHROPIC_API_KEY=scripted.
            `drover serve` and `drover worker` run the same model in process when no ANTHROPIC_API_KEY
            is set. The script format is docs/scripted-model.md; --print-built-in shows the script
            used without --script.
            """
    )

    @Option(help: "Port on 127.0.0.1; 0 picks a free one.") var port = 0
    @Option(help: "A YAML script of turns, or of a playbook (default: the built-in script).") var script: String?
    @Flag(help: "Print the built-in script and exit.") var printBuiltIn = false

    func run() async throws {
        if printBuiltIn {
            FileHandle.standardOutput.write(Data(ModelScript.builtInYAML.utf8))
            return
        }
        let loaded: ModelScript
        do {
            loaded = try script.map(ModelScript.load(path:)) ?? .builtIn
        } catch {
            FileHandle.standardError.write(Data("drover: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let server = try await ScriptedModelServer.start(script: loaded, port: port)
        FileHandle.standardOutput.write(Data("\(server.baseURL) (scripted model; not a real model)\n".utf8))
        let group = ServiceGroup(
            services: [StubService(server: server)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "drover.model-stub")
        )
        try await group.run()
    }
}

/// Keeps the scripted server up until graceful shutdown.
struct StubService: Service {
    let server: ScriptedModelServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}
