import DroverCore
import Foundation
import Synchronization

/// A Redis Cluster of `redis-server` child processes on loopback, for tests and `drover bench
/// cluster`: by default three masters with one replica each, slots split evenly, and a low
/// `cluster-node-timeout` so that a replica takes over a killed master within a few seconds.
///
/// It is built with the cluster commands themselves (`CLUSTER ADDSLOTSRANGE`, `MEET`,
/// `REPLICATE`) rather than `redis-cli --cluster create`, which sleeps a second per step.
public final class LocalRedisCluster: Sendable {
    public struct Node: Sendable {
        public let port: Int
        public let process: ChildProcess
    }

    public let directory: URL
    public let nodeTimeout: Duration
    private let nodes: Mutex<[Node]>

    /// Every node as a seed: a client finds the cluster through whichever is up.
    public var url: RedisURL {
        RedisURL(cluster: ports.map { .tcp(host: "127.0.0.1", port: $0) })
    }

    public var ports: [Int] { nodes.withLock { $0.map(\.port) } }

    public var processIdentifiers: [Int32] { nodes.withLock { $0.map(\.process.pid) } }

    private init(directory: URL, nodeTimeout: Duration, nodes: [Node]) {
        self.directory = directory
        self.nodeTimeout = nodeTimeout
        self.nodes = Mutex(nodes)
    }

    /// Starts and forms the cluster in `directory` (made, and removed by `shutdown`). With
    /// `pinMasters`, master N runs on core N modulo the cores there are (`taskset`), so that a
    /// scaling curve measures masters rather than the scheduler's placement.
    public static func start(
        in directory: URL, masters: Int = 3, replicasPerMaster: Int = 1, nodeTimeout: Duration = .milliseconds(1000),
        pinMasters: Bool = false
    ) async throws -> LocalRedisCluster {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let count = masters * (1 + replicasPerMaster)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var launched: [Node] = []
        let fixture: LocalRedisCluster
        do {
            for index in 0..<count {
                let core = pinMasters && index < masters ? index % cores : nil
                launched.append(
                    try launch(in: directory, port: try clusterPort(avoiding: launched.map(\.port)), nodeTimeout: nodeTimeout, core: core))
            }
            fixture = LocalRedisCluster(directory: directory, nodeTimeout: nodeTimeout, nodes: launched)
        } catch {
            for node in launched { await node.process.kill() }
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        do {
            try await fixture.form(masters: masters, replicasPerMaster: replicasPerMaster)
        } catch {
            await fixture.shutdown()
            throw error
        }
        return fixture
    }

    public func client(poolSize: Int = 2, reconnectWindow: Duration = .seconds(30)) async throws -> RedisClient {
        var options = RedisClientOptions()
        options.poolSize = poolSize
        options.reconnectWindow = reconnectWindow
        options.commandTimeout = .seconds(120)
        return try await RedisClient.connect(url, options: options)
    }

    /// A client of one node alone, for what the test does behind the cluster client's back.
    public func nodeClient(_ port: Int) async throws -> RedisClient {
        var options = RedisClientOptions()
        options.reconnectWindow = .seconds(2)
        options.commandTimeout = .seconds(60)
        return try await RedisClient.connect(RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port)), options: options)
    }

    /// The port of the master that serves `slot` now, as a node that is up sees it.
    public func masterPort(ofSlot slot: Int) async throws -> Int? {
        for port in livePorts {
            guard let client = try? await nodeClient(port) else { continue }
            defer { client.close() }
            let asked = RedisURL.Endpoint.tcp(host: "127.0.0.1", port: port)
            guard let reply = try? await client.send(["CLUSTER", "SLOTS"]),
                let topology = try? RedisClusterTopology(clusterSlots: reply, askedNode: asked)
            else { continue }
            if case .tcp(_, let owner)? = topology.owner(of: slot) { return owner }
            return nil
        }
        return nil
    }

    /// Kills the node on `port` with SIGKILL, as a crash would.
    public func kill(port: Int) async {
        guard let node = nodes.withLock({ $0.first { $0.port == port } }) else { return }
        await node.process.kill()
    }

    /// Ports of nodes whose process still runs.
    public var livePorts: [Int] {
        nodes.withLock { $0.filter(\.process.isRunning).map(\.port) }
    }

    /// Waits until every live node says the cluster is ok and a live master serves `slot`.
    public func waitUntilServing(slot: Int, within limit: Duration = .seconds(90)) async throws -> Bool {
        try await Self.poll(within: limit, polling: .milliseconds(100)) {
            guard let master = try await masterPort(ofSlot: slot), livePorts.contains(master) else { return false }
            return await allLiveNodesSayOK()
        }
    }

    public func shutdown() async {
        for node in nodes.withLock({ $0 }) { await node.process.kill() }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Forming the cluster

    private func form(masters: Int, replicasPerMaster: Int) async throws {
        let ports = self.ports
        var clients: [RedisClient] = []
        defer { for client in clients { client.close() } }
        for port in ports {
            var connected: RedisClient?
            _ = try await Self.poll(within: .seconds(60), polling: .milliseconds(20)) {
                connected = try? await nodeClient(port)
                return connected != nil
            }
            guard let connected else {
                throw LocalRedisClusterError("the cluster node on port \(port) did not start; see \(directory.path)/\(port)/redis.log")
            }
            clients.append(connected)
        }
        var ids: [String] = []
        for client in clients { ids.append(try await client.send(["CLUSTER", "MYID"]).string ?? "") }
        // Slots split evenly over the masters, the last taking the remainder.
        let share = RedisHashSlot.count / masters
        for index in 0..<masters {
            let last = index == masters - 1 ? RedisHashSlot.count - 1 : (index + 1) * share - 1
            try await clients[index].send(["CLUSTER", "ADDSLOTSRANGE", String(index * share), String(last)])
        }
        for (index, client) in clients.enumerated() {
            for other in ports where other != ports[index] {
                try await client.send(["CLUSTER", "MEET", "127.0.0.1", String(other)])
            }
        }
        let everyoneKnown = try await Self.poll(within: .seconds(60), polling: .milliseconds(50)) {
            // A node met but still in handshake is listed under a made-up id: wait for the real ones.
            for client in clients {
                let known = try await client.send(["CLUSTER", "NODES"]).string ?? ""
                if !ids.allSatisfy({ known.contains($0) }) || known.contains("handshake") { return false }
            }
            return true
        }
        guard everyoneKnown else { throw LocalRedisClusterError("the cluster nodes did not all meet within 60 s") }
        for replica in masters..<ports.count {
            let master = (replica - masters) % masters
            try await clients[replica].send(["CLUSTER", "REPLICATE", ids[master]])
        }
        let ready = try await Self.poll(within: .seconds(90), polling: .milliseconds(50)) {
            guard await allLiveNodesSayOK() else { return false }
            for client in clients[masters...] {
                let replication = try await client.send(["INFO", "replication"]).string ?? ""
                if !replication.contains("master_link_status:up") { return false }
            }
            return true
        }
        guard ready else { throw LocalRedisClusterError("the cluster was not ok within 90 s; see the logs under \(directory.path)") }
    }

    private func allLiveNodesSayOK() async -> Bool {
        for port in livePorts {
            guard let client = try? await nodeClient(port) else { return false }
            defer { client.close() }
            guard let info = try? await client.send(["CLUSTER", "INFO"]).string, info.contains("cluster_state:ok") else { return false }
        }
        return true
    }

    private static func launch(in directory: URL, port: Int, nodeTimeout: Duration, core: Int?) throws -> Node {
        let nodeDirectory = directory.appendingPathComponent(String(port))
        try FileManager.default.createDirectory(at: nodeDirectory, withIntermediateDirectories: true)
        guard let executable = EmbeddedRedis.findExecutable("redis-server") else {
            throw LocalRedisClusterError("redis-server is not installed. Fix: ./scripts/setup (or apt-get install -y redis-server)")
        }
        var prefix: [String] = []
        var program = executable.path
        if let core, let taskset = EmbeddedRedis.findExecutable("taskset") {
            prefix = ["-c", String(core), executable.path]
            program = taskset.path
        }
        let process = try ChildProcess(
            executable: program,
            arguments: prefix + [
                "--port", String(port), "--bind", "127.0.0.1", "--dir", nodeDirectory.path,
                "--cluster-enabled", "yes", "--cluster-config-file", nodeDirectory.appendingPathComponent("nodes.conf").path,
                "--cluster-node-timeout", String(nodeTimeout.milliseconds),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--logfile", nodeDirectory.appendingPathComponent("redis.log").path,
            ])
        return Node(port: port, process: process)
    }

    /// Looks at `condition` until it holds or `limit` has passed; says whether it held.
    private static func poll(within limit: Duration, polling interval: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: interval)
        }
        return try await condition()
    }

    /// A free loopback port whose cluster bus port (10000 above it) is free too. Both stay below
    /// Linux's ephemeral range (from 32768), where the kernel hands out ports to every other
    /// connection and server on the machine, so none can take one between this check and
    /// redis-server's bind.
    private static func clusterPort(avoiding taken: [Int]) throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 12000...22000)
            if !taken.contains(port), isFree(port), isFree(port + 10000) { return port }
        }
        throw LocalRedisClusterError("no free pair of loopback ports for a cluster node")
    }

    private static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// Why a local cluster could not be started.
public struct LocalRedisClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
