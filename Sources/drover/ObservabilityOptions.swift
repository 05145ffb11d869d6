import ArgumentParser
import DroverAPI
import DroverCore
import DroverHands
import DroverMetrics
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation
import Logging
import ServiceLifecycle

/// How a long-running role logs and exposes metrics: `serve`, `api`, `worker`, `recorder` and
/// `scheduler` share these.
struct ObservabilityOptions: ParsableArguments {
    @Option(help: "text or json: one JSON object per line on stderr, for a log shipper (default: DROVER_LOG_FORMAT, else text).")
    var logFormat: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (default: DROVER_LOG_LEVEL, else info).")
    var logLevel: String?
    @Flag(
        inversion: .prefixedNo,
        help: "Keep Prometheus metrics, served at /metrics on the API (and on --metrics-address). DROVER_METRICS=off turns them off too.")
    var metrics = true
    @Option(help: "host:port to serve /metrics on, for a role with no API (worker, recorder, scheduler).")
    var metricsAddress: String?

    /// What `bootstrap` made, for the role to add its samplers and serve.
    struct Bootstrapped {
        let logs: LogSettings
        let metrics: MetricsExposition?
        /// `--metrics-address`, parsed.
        let metricsAddress: (host: String, port: Int)?
    }

    /// Sets up logging and metrics, before anything logs or records: a logger or metric made
    /// earlier keeps the defaults for good.
    func bootstrap() throws -> Bootstrapped {
        let logs = try LogSettings.resolve(format: logFormat, level: logLevel)
        let address = try metricsAddress.map { try DroverConfiguration.hostAndPort($0) }
        let off = ProcessInfo.processInfo.environment["DROVER_METRICS"].map { ["off", "0", "false", "no"].contains($0.lowercased()) } ?? false
        if !metrics || off, metricsAddress != nil {
            throw FieldError(
                field: "--metrics-address", message: "metrics are off (--no-metrics or DROVER_METRICS=off), so there is nothing to serve",
                fix: "drop --metrics-address, or turn metrics on")
        }
        logs.bootstrap()
        return Bootstrapped(logs: logs, metrics: metrics && !off ? MetricsExposition.bootstrap() : nil, metricsAddress: address)
    }

    /// `serve` and `api` serve /metrics on the API's own address.
    func refuseMetricsAddress(role: String) throws {
        guard metricsAddress != nil else { return }
        throw FieldError(
            field: "--metrics-address", message: "drover \(role) serves /metrics on its API address already",
            fix: "drop --metrics-address and scrape http://ADDRESS/metrics")
    }

    /// The `/metrics` server at `--metrics-address`, if one was asked for.
    func metricsService(_ bootstrapped: Bootstrapped, role: String) -> (any Service)? {
        guard let (host, port) = bootstrapped.metricsAddress, let exposition = bootstrapped.metrics else { return nil }
        var logger = Logger(label: "drover.metrics")
        logger.logLevel = .warning
        return MetricsServer.application(exposition, host: host, port: port, logger: logger) { port in
            note("drover \(role): metrics on http://\(host):\(port)/metrics")
        }
    }
}

extension MetricsExposition {
    /// What every role that touches the queues shows: their depths, read at each scrape.
    func sampleQueues(_ redis: RedisClient) {
        let queue = TaskQueue(redis: redis)
        addSampler { await QueueMetrics.sample(queue, always: ["turns"]) }
    }

    func sampleRecorder(_ redis: RedisClient) {
        addSampler { await RecorderMetrics.sample(redis) }
    }

    func samplePool(_ pool: SandboxPool) {
        addSampler { await SandboxPoolMetrics.sample(pool) }
    }
}
