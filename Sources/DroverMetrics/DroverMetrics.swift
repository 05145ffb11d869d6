@_exported import CoreMetrics
import DroverCore
@_exported import Metrics

/// Every metric Drover records, named in one place, so that the names a dashboard depends on
/// are reviewed together and cannot drift between the modules that record them.
///
/// They are swift-metrics values: until a process bootstraps a backend (`MetricsExposition`,
/// which `drover serve`, `api`, `worker`, `recorder` and `scheduler` do), recording costs a
/// call into a no-op handler. The backend is bound when a metric is first made, which is why
/// these are made lazily (static lets) and never before the bootstrap.
public enum DroverMetrics {
    // MARK: Queue: what this process did; depth and age are read from Redis at each scrape.
    public static let queueClaims = CounterFamily("drover_queue_claims_total", "queue")
    public static let queueAcks = CounterFamily("drover_queue_acks_total", "queue")
    /// Failures handed back: `outcome` is `retry` (after a backoff) or `dead` (dead-lettered).
    public static let queueFails = CounterFamily("drover_queue_fails_total", "queue", "outcome")
    /// Acks, heartbeats and fails refused because the lease had expired or been taken over.
    public static let queueLeasesLost = CounterFamily("drover_queue_leases_lost_total", "queue")
    /// Leases the sweep found expired and handed back (a worker died or stalled).
    public static let queueLeaseExpiries = CounterFamily("drover_queue_lease_expiries_total", "queue")
    /// Tasks the sweep dead-lettered for stalling more than their limit.
    public static let queueStalledDead = CounterFamily("drover_queue_stalled_dead_total", "queue")

    // MARK: Turns and the model
    public static let turnDuration = Timer(label: "drover_turn_duration_seconds")
    /// Turns by how they ended: `end_turn`, `requires_action`, `error`, `interrupted`, ...
    public static let turns = CounterFamily("drover_turns_total", "outcome")
    public static let modelRequestDuration = Timer(label: "drover_model_request_duration_seconds")
    public static let modelTimeToFirstToken = Timer(label: "drover_model_time_to_first_token_seconds")
    public static let modelRetries = Counter(label: "drover_model_retries_total")
    public static let modelErrors = Counter(label: "drover_model_errors_total")
    public static let compactions = Counter(label: "drover_context_compactions_total")

    // MARK: Tools
    public static let toolCallDuration = TimerFamily("drover_tool_call_duration_seconds", "tool")
    public static let toolCallErrors = CounterFamily("drover_tool_call_errors_total", "tool")

    // MARK: Sandbox pool: counts are read from the pool at each scrape.
    public static let sandboxProvision = Timer(label: "drover_sandbox_provision_seconds")
    public static let sandboxEvictions = Counter(label: "drover_sandbox_evictions_total")

    // MARK: Recorder
    public static let recorderEvents = Counter(label: "drover_recorder_events_total")
    /// Seconds between an event's append and its mirroring, at the last batch mirrored.
    public static let recorderLag = Gauge(label: "drover_recorder_lag_seconds")

    // MARK: Scheduler
    /// 1 while this process holds the scheduler's leader lock.
    public static let schedulerLeader = Gauge(label: "drover_scheduler_leader")
    public static let schedulerFires = CounterFamily("drover_scheduler_fires_total", "outcome")

    // MARK: Cost
    /// Model tokens by model and kind (`input`, `output`, `cache_read`, `cache_creation`).
    public static let tokens = CounterFamily("drover_model_tokens_total", "model", "kind")
    /// Seconds sessions spent running turns: what a runtime rate per session-hour is charged on.
    public static let activeSessionSeconds = FloatingPointCounter(label: "drover_session_active_seconds_total")
}

/// Metrics of one name told apart by label values, each made once: the backend's lookup takes
/// a lock and a dictionary probe per call, this one a cheaper lock here.
public final class MetricFamily<Metric: Sendable>: Sendable {
    let label: String
    let dimensions: [String]
    private let make: @Sendable (String, [(String, String)]) -> Metric
    private let made = Locked<[[String]: Metric]>([:])

    init(_ label: String, _ dimensions: [String], make: @escaping @Sendable (String, [(String, String)]) -> Metric) {
        self.label = label
        self.dimensions = dimensions
        self.make = make
    }

    public func callAsFunction(_ values: String...) -> Metric {
        made.withLock { made in
            if let metric = made[values] { return metric }
            let metric = make(label, Array(zip(dimensions, values)))
            made[values] = metric
            return metric
        }
    }
}

public typealias CounterFamily = MetricFamily<Counter>
public typealias TimerFamily = MetricFamily<Timer>

extension MetricFamily where Metric == Counter {
    public convenience init(_ label: String, _ dimensions: String...) {
        self.init(label, dimensions) { Counter(label: $0, dimensions: $1) }
    }
}

extension MetricFamily where Metric == Timer {
    public convenience init(_ label: String, _ dimensions: String...) {
        self.init(label, dimensions) { Timer(label: $0, dimensions: $1) }
    }
}

/// Gauges of one name told apart by label values, set at each scrape; the label sets a sampler
/// no longer reports are removed, so that a finished batch's queue leaves the exposition.
public final class SampledGauges: Sendable {
    let label: String
    let dimensions: [String]
    private let made = Locked<[[String]: Gauge]>([:])

    public init(_ label: String, _ dimensions: String...) {
        self.label = label
        self.dimensions = dimensions
    }

    /// Sets every series to `values` and removes the ones not in it.
    public func set(_ values: [[String]: Double]) {
        let stale: [Gauge] = made.withLock { made in
            for (labels, value) in values {
                let gauge = made[labels] ?? Gauge(label: label, dimensions: Array(zip(dimensions, labels)))
                made[labels] = gauge
                gauge.record(value)
            }
            let gone = made.keys.filter { values[$0] == nil }
            return gone.compactMap { made.removeValue(forKey: $0) }
        }
        for gauge in stale { gauge.destroy() }
    }
}

extension Timer {
    /// Records the time since `start`, as measured on the continuous clock.
    public func record(since start: ContinuousClock.Instant) {
        record(duration: ContinuousClock.now - start)
    }
}
