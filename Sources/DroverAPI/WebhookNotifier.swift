import DroverWebhooks
import Logging

/// Tells the workspace's webhook endpoints of a change the API has made. The change is written
/// by then; if its webhook cannot be queued (Redis away), that is logged and the answer stands,
/// so a webhook from the API can be lost only in that window. Status changes come from the
/// session log through the recorder and are never lost that way.
struct WebhookNotifier: Sendable {
    let outbox: WebhookOutbox?
    private let logger = Logger(label: "drover.webhooks")

    init(outbox: WebhookOutbox?) {
        self.outbox = outbox
    }

    func callAsFunction(_ type: WebhookEventType, _ id: String, workspace: String) async {
        guard let outbox else { return }
        do {
            try await outbox.emit(type, objectID: id, workspace: workspace)
        } catch {
            logger.warning("webhook \(type.rawValue) for \(id) was not queued: \(error)")
        }
    }
}
