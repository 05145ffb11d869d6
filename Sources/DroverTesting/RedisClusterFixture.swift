import DroverCore
import DroverRedis
import Foundation

/// A real Redis Cluster for a test (three masters, three replicas by default), its files in
/// memory where the machine allows.
public typealias RedisClusterFixture = LocalRedisCluster

extension LocalRedisCluster {
    public static func start(masters: Int = 3, replicasPerMaster: Int = 1) async throws -> LocalRedisCluster {
        StallWatch.start()
        let cluster = try await start(
            in: scratchRoot.appendingPathComponent("drover-cluster-\(Identifier.make(prefix: "c").suffix(12))"),
            masters: masters, replicasPerMaster: replicasPerMaster)
        for (index, pid) in cluster.processIdentifiers.enumerated() { StallWatch.watch(pid: pid, name: "redis-cluster-\(cluster.ports[index])") }
        return cluster
    }
}

/// Runs `body` with a fresh cluster, and stops it however `body` ends.
public func withRedisCluster<T>(
    masters: Int = 3, replicasPerMaster: Int = 1, _ body: (RedisClusterFixture) async throws -> T
) async throws -> T {
    let cluster = try await RedisClusterFixture.start(masters: masters, replicasPerMaster: replicasPerMaster)
    do {
        let result = try await body(cluster)
        await cluster.shutdown()
        return result
    } catch {
        await cluster.shutdown()
        throw error
    }
}
