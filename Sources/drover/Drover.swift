import ArgumentParser
import DroverBench
import DroverCore
import Foundation

@main
struct Drover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover",
        abstract: "A self-hosted runtime for long-running AI agents.",
        discussion: """
            Configuration comes from the environment:
              DROVER_REDIS_URL   redis://[:password@]host:port/db or unix:///path?db=N.
                                 Unset: Drover starts a private redis-server (AOF on) in DROVER_DATA_DIR.
              DROVER_DATA_DIR    where embedded state lives (default: the nearest .drover here or above, else ./.drover).
              DROVER_DB          the SQLite file (default $DROVER_DATA_DIR/drover.db).
              DROVER_REDIS_POOL  pooled Redis connections per process (default 8).
              DROVER_API_ADDR    where `drover api` and `drover serve` listen (default 127.0.0.1:8787).
              DROVER_VAULT_KEY   the key that seals vault secrets (default $DROVER_DATA_DIR/vault.key).
              DROVER_INTERNAL_HOSTS  hosts (comma-separated) on a private network or loopback that agents'
                                 MCP servers and git repositories may be on (default: public only).
              DROVER_WEB_SEARCH_URL  the SearXNG-style JSON endpoint web_search asks (default: none).
              DROVER_EGRESS_TRUST  PEM files (:-separated) of further CAs the egress proxy trusts when it
                                 reads HTTPS to a credential's host (default: the system's store only).
            """,
        version: DroverVersion.string,
        subcommands: [
            RunCommand.self, BatchCommand.self, ReportCommand.self, ApplyCommand.self, DeploymentsCommand.self, SchedulerCommand.self,
            ServeCommand.self, APICommand.self, KeysCommand.self, QueueCommand.self, SessionsCommand.self, RecorderCommand.self, WorkerCommand.self,
            ModelStubCommand.self, BenchCommand.self, VaultsCommand.self, VersionCommand.self,
        ]
    )
}

enum DroverVersion {
    static let string = "0.1.0"
}
