import ArgumentParser
import DroverBench
import DroverCore
import Foundation

@main
struct Drover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover",
        abstract: "A self-hosted runtime for long-running AI agents.",
        discussion: "Configuration comes from the environment; every variable has an embedded default:\n" + EnvironmentVariables.help,
        version: DroverVersion.string,
        subcommands: [
            RunCommand.self, BatchCommand.self, ReportCommand.self, ApplyCommand.self, DeploymentsCommand.self, SchedulerCommand.self,
            ServeCommand.self, APICommand.self, KeysCommand.self, QueueCommand.self, SessionsCommand.self, RecorderCommand.self, WorkerCommand.self,
            ModelStubCommand.self, BenchCommand.self, VaultsCommand.self, WebhooksCommand.self, VersionCommand.self,
        ]
    )
}

enum DroverVersion {
    static let string = "0.1.0"
}
