/// Every environment variable Drover reads, with what it means: `drover --help` prints this
/// table, and a test checks that every variable the sources read is in it.
public enum EnvironmentVariables {
    public struct Variable: Sendable {
        public let name: String
        public let meaning: String
    }

    public static let all: [Variable] = [
        Variable(
            name: "ANTHROPIC_API_KEY",
            meaning:
                "the model key for sessions. Unset: `drover run` uses the job's playbook, and `serve` and `worker` the built-in script, on the scripted model"
        ),
        Variable(name: "ANTHROPIC_BASE_URL", meaning: "the Messages API to call (default https://api.anthropic.com)"),
        Variable(
            name: "DROVER_REDIS_URL",
            meaning: "redis://[:password@]host:port/db or unix:///path?db=N. Unset: a private redis-server (AOF on) in DROVER_DATA_DIR"),
        Variable(name: "DROVER_DATA_DIR", meaning: "where embedded state lives (default: the nearest .drover here or above, else ./.drover)"),
        Variable(name: "DROVER_DB", meaning: "the SQLite file (default $DROVER_DATA_DIR/drover.db)"),
        Variable(name: "DROVER_REDIS_POOL", meaning: "Redis connections per process that commands share, pipelined (default 2)"),
        Variable(name: "DROVER_API_ADDR", meaning: "where `drover api` and `drover serve` listen (default 127.0.0.1:8787)"),
        Variable(name: "DROVER_HANDS_DIR", meaning: "sandbox workspaces (default $DROVER_DATA_DIR/hands; as root /var/tmp/drover-hands/<hash>)"),
        Variable(
            name: "DROVER_FILE_STORE_MAX_BYTES",
            meaning: "the largest file that reaches a sandbox or comes back from one, through the file store in Redis (default 64MiB)"),
        Variable(name: "DROVER_FILE_STORE_SESSION_BYTES", meaning: "the most one session's files take in the file store together (default 256MiB)"),
        Variable(name: "DROVER_FILE_STORE_DAYS", meaning: "days the file store keeps a file after it was last used (default 30)"),
        Variable(
            name: "DROVER_CONTEXT_WINDOW",
            meaning: "model context windows in tokens: 200000 for all, or MODEL=TOKENS,...,*=TOKENS (default 200000; docs/compaction.md)"),
        Variable(name: "DROVER_COMPACTION_MARGIN", meaning: "percent of the window kept free: compaction starts past the rest (default 10)"),
        Variable(
            name: "DROVER_COMPACTION_LIMIT",
            meaning: "compactions in a row, with no model message or tool call between, that stop a turn (default 3)"),
        Variable(name: "DROVER_THREAD_LIMIT", meaning: "session threads one coordinator session may start (default 32; docs/threads.md)"),
        Variable(name: "DROVER_COMPACTION", meaning: "off sends every request whole, never compacting (default on)"),
        Variable(name: "DROVER_SANDBOX_MEMORY", meaning: "memory per sandbox, its /tmp included (default 2GiB)"),
        Variable(name: "DROVER_SANDBOX_PIDS", meaning: "processes and threads per sandbox (default 256)"),
        Variable(name: "DROVER_SANDBOX_CPUS", meaning: "CPU cores' worth of time per sandbox (default 1)"),
        Variable(name: "DROVER_SANDBOX_TMP", meaning: "the size of each sandbox's /tmp (default 256MiB)"),
        Variable(name: "DROVER_SANDBOX_DISK", meaning: "the disk quota per session's workspace (default 4GiB; off: plain directories)"),
        Variable(name: "DROVER_SANDBOX_CGROUPS", meaning: "off keeps sandboxes out of cgroups (rlimits only)"),
        Variable(name: "DROVER_PIP_ALLOW_ANY", meaning: "1 lets environments list pip specifiers other than names and versions"),
        Variable(name: "DROVER_VAULT_KEY", meaning: "the key that seals vault secrets (default $DROVER_DATA_DIR/vault.key)"),
        Variable(name: "DROVER_VAULT_KEY_PREVIOUS", meaning: "earlier vault keys (comma-separated), until `drover vaults rekey`"),
        Variable(name: "DROVER_EGRESS_FORWARDER", meaning: "the relay sandboxes with a network run (default drover-egress-forward beside drover)"),
        Variable(
            name: "DROVER_INTERNAL_HOSTS",
            meaning: "hosts (comma-separated) on a private network or loopback that agents' MCP servers and git repositories may be on"),
        Variable(name: "DROVER_WEB_SEARCH_URL", meaning: "the SearXNG-style JSON endpoint web_search asks (default: none)"),
        Variable(
            name: "DROVER_EGRESS_TRUST",
            meaning: "PEM files (:-separated) of further CAs the egress proxy trusts when it reads HTTPS to a credential's host"),
        Variable(name: "DROVER_LOG_FORMAT", meaning: "text or json: how serve, api, worker, recorder and scheduler log on stderr (--log-format)"),
        Variable(name: "DROVER_LOG_LEVEL", meaning: "trace to critical: the least a long-running role logs (default info; --log-level)"),
        Variable(name: "DROVER_METRICS", meaning: "off: keep no Prometheus metrics and serve no /metrics (--no-metrics)"),
        Variable(name: "DROVER_CONFIGURATION", meaning: "debug makes scripts/drover (the `drover` on PATH) run the debug build (default release)"),
    ]

    /// The table for `--help`: one variable per entry, its meaning wrapped under it.
    public static var help: String {
        all.map { variable in
            var lines: [String] = []
            var line = "     "
            for word in variable.meaning.split(separator: " ") {
                if line.count + 1 + word.count > 78 {
                    lines.append(line)
                    line = "     "
                }
                line += " " + word
            }
            lines.append(line)
            return "  \(variable.name)\n" + lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}
