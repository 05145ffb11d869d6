import DroverCore
import DroverDatabase
import DroverHTTP
import DroverQueue
import DroverRedis
import Foundation
import Logging
import ServiceLifecycle

/// Delivers queued webhooks: claims deliveries from the `webhooks` queue under a lease a little
/// longer than one attempt may take, POSTs each signed body, and acks it on a 2xx. Anything else
/// (another status, a refused connection, a timeout) fails the attempt, and the queue brings it
/// back after its backoff; when the attempts run out it stays in the dead-letter set, which
/// `drover webhooks dead` and the console's Webhooks page list. A deliverer killed mid-request
/// holds a lease that expires, and another (or itself, restarted) sends the delivery again with
/// the same `webhook-id`: delivery is at least once.
public struct WebhookDeliverer: Service {
    public let database: MirrorDatabase
    public let redis: RedisClient
    public let policy: WebhookRetryPolicy
    /// Deliveries in flight at once.
    public var concurrency = 4
    private let logger = Logger(label: "drover.webhooks")

    public init(database: MirrorDatabase, redis: RedisClient, policy: WebhookRetryPolicy = WebhookRetryPolicy()) {
        self.database = database
        self.redis = redis
        self.policy = policy
    }

    var queue: TaskQueue { TaskQueue(redis: redis, options: policy.queueOptions) }
    var leaseTTL: Duration { policy.timeout + .seconds(5) }

    public func run() async throws {
        let consumer = queue.consumer(WebhookOutbox.queueName, workerId: Identifier.make(prefix: "webhooks"))
        defer { consumer.close() }
        // A shutdown ends the loop wherever it waits; it is never an error of the deliverer's.
        await cancelWhenGracefulShutdown { await deliverUntilCancelled(consumer) }
    }

    private func deliverUntilCancelled(_ consumer: QueueConsumer) async {
        while !Task.isCancelled {
            let leases: [TaskLease]
            do {
                leases = try await consumer.next(max: concurrency, leaseTTL: leaseTTL, wait: .seconds(5))
            } catch {
                if Task.isCancelled { return }
                // Redis away: the deliveries wait there, so wait for it too.
                logger.warning("webhooks: cannot claim deliveries: \(error)")
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            await withTaskGroup(of: Void.self) { group in
                for lease in leases { group.addTask { await deliver(lease) } }
            }
        }
    }

    /// One attempt at one delivery, ending in an ack or a failed attempt.
    func deliver(_ lease: TaskLease) async {
        let queue = self.queue
        guard let delivery = WebhookDelivery.decode(lease.payload) else {
            _ = try? await queue.fail(lease, error: "not a webhook delivery", retryable: false)
            return
        }
        guard let endpoint = try? await database.webhookEndpoint(id: delivery.endpointID) else {
            // Removed since: nobody wants it any more.
            _ = try? await queue.ack(lease)
            return
        }
        let outcome = await attempt(delivery, to: endpoint)
        do {
            if let failure = outcome {
                logger.info("webhook \(delivery.eventID) to \(endpoint.url): attempt \(lease.attempt) failed: \(failure)")
                _ = try await queue.fail(lease, error: failure, retryable: true)
            } else {
                _ = try await queue.ack(lease)
            }
        } catch {
            // The lease expires and the delivery comes back: at least once.
            logger.warning("webhook \(delivery.eventID): cannot record the attempt: \(error)")
        }
    }

    /// Nil when the endpoint took it (2xx); otherwise what went wrong, for the dead letters.
    func attempt(_ delivery: WebhookDelivery, to endpoint: MirrorDatabase.WebhookEndpoint) async -> String? {
        do {
            var headers = try WebhookSignature.headers(id: delivery.eventID, body: delivery.body, secret: endpoint.secret)
            headers += [("content-type", "application/json"), ("user-agent", "Drover-Webhooks/1")]
            let request = HTTPRequest(
                url: endpoint.url, method: "POST", headers: headers, body: Array(delivery.body.utf8), connectTimeout: policy.timeout,
                readTimeout: policy.timeout)
            let response = try await CurlHTTPClient.shared.send(request)
            return (200..<300).contains(response.status) ? nil : "HTTP \(response.status) from \(endpoint.url)"
        } catch {
            return "\(endpoint.url): \(error)"
        }
    }
}
