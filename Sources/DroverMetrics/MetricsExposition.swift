import CoreMetrics
import DroverCore
import Foundation
import Prometheus

/// The process's metrics in the Prometheus text format (`GET /metrics`).
///
/// Counters and histograms are kept as they are recorded. Figures that live elsewhere (queue
/// depths in Redis, the sandbox pool's counts) are read at each scrape by the samplers each
/// role adds, so that a scrape shows them as they are, and nothing polls between scrapes.
public final class MetricsExposition: Sendable {
    /// The one exposition of this process; nil until `bootstrap()`, and then metrics are off.
    public static var shared: MetricsExposition? { installed.value }
    private static let installed = Locked<MetricsExposition?>(nil)

    let registry: PrometheusCollectorRegistry
    private let samplers = Locked<[@Sendable () async -> Void]>([])

    private init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Makes swift-metrics record into a Prometheus registry, once per process. Must run before
    /// any metric is made: one made earlier stays bound to the no-op backend.
    @discardableResult
    public static func bootstrap() -> MetricsExposition {
        installed.withLock { installed in
            if let installed { return installed }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // swift-metrics names (Hummingbird's `http.server.request.duration`) become valid
            // Prometheus names.
            factory.nameAndLabelSanitizer = { name, labels in
                (name.replacingOccurrences(of: ".", with: "_"), labels.map { ($0.replacingOccurrences(of: ".", with: "_"), $1) })
            }
            // Sub-millisecond steps for what should be fast (a tool call, a queue round trip)
            // and minutes for what may be slow (a turn, a model request).
            factory.defaultDurationHistogramBuckets = [
                .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
                .seconds(10), .seconds(30), .seconds(60), .seconds(300),
            ]
            MetricsSystem.bootstrap(factory)
            let exposition = MetricsExposition(registry: registry)
            installed = exposition
            return exposition
        }
    }

    /// Runs `sampler` before each scrape: it sets the gauges whose values live elsewhere.
    public func addSampler(_ sampler: @escaping @Sendable () async -> Void) {
        samplers.withLock { $0.append(sampler) }
    }

    /// The text a scrape gets, after every sampler has run.
    public func scrape() async -> [UInt8] {
        for sampler in samplers.value { await sampler() }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return buffer
    }

    /// The content type of the text format, version 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
