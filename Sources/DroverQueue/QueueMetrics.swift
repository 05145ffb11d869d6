import DroverCore
import DroverMetrics

/// The queues' depths and ages as a scrape shows them, read from Redis at the scrape: the
/// figures are the whole deployment's, the same from every process that exposes them.
public enum QueueMetrics {
    static let tasks = SampledGauges("drover_queue_tasks", "queue", "state")
    static let oldestReadyAge = SampledGauges("drover_queue_oldest_ready_age_seconds", "queue")
    static let paused = SampledGauges("drover_queue_paused", "queue")

    /// Sets the gauges from every queue in Redis. A queue with nothing in it is left out unless
    /// it is the turn queue or paused, so that the queues of finished batches do not pile up as
    /// series. A scrape during a Redis outage keeps the last figures.
    public static func sample(_ queue: TaskQueue, always: Set<String> = []) async {
        guard let names = try? await queue.queueNames() else { return }
        var counts: [[String]: Double] = [:]
        var ages: [[String]: Double] = [:]
        var pausedQueues: [[String]: Double] = [:]
        for name in names {
            guard let stats = try? await queue.stats(name) else { return }
            let total = stats.ready + stats.delayed + stats.leased + stats.dead
            guard total > 0 || stats.paused || always.contains(stats.queue) else { continue }
            for (state, count) in [("ready", stats.ready), ("delayed", stats.delayed), ("leased", stats.leased), ("dead", stats.dead)] {
                counts[[stats.queue, state]] = Double(count)
            }
            ages[[stats.queue]] = Double(stats.oldestReadyAgeMs ?? 0) / 1000
            pausedQueues[[stats.queue]] = stats.paused ? 1 : 0
        }
        tasks.set(counts)
        oldestReadyAge.set(ages)
        paused.set(pausedQueues)
    }
}
