/// Durations in fixed millisecond buckets, with percentiles over the most recent samples.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds of the buckets, in milliseconds; a last bucket takes everything above.
    public static let bounds: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    public private(set) var counts = [Int](repeating: 0, count: bounds.count + 1)
    public private(set) var count = 0
    public private(set) var maximum = 0.0
    private var recent: [Double] = []
    private static let kept = 1024

    public init() {}

    public mutating func record(milliseconds: Double) {
        counts[Self.bounds.firstIndex { milliseconds <= $0 } ?? Self.bounds.count] += 1
        count += 1
        maximum = max(maximum, milliseconds)
        if recent.count == Self.kept { recent.removeFirst() }
        recent.append(milliseconds)
    }

    /// The `p`th percentile (0–100) of the last 1024 samples, or nil before the first.
    public func percentile(_ p: Double) -> Double? {
        guard !recent.isEmpty else { return nil }
        let sorted = recent.sorted()
        return sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - (p > 0 ? 1 : 0))]
    }
}
