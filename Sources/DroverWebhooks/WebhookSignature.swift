import Crypto
import Foundation

/// Standard Webhooks signing (https://www.standardwebhooks.com), which the SDK's
/// `client.beta.webhooks.unwrap` verifies: an HMAC-SHA256 over `id.timestamp.body` with the
/// endpoint's secret (`whsec_` and the key in base64), sent as `webhook-signature: v1,BASE64`
/// beside `webhook-id` and `webhook-timestamp` (seconds). The timestamp is each attempt's own,
/// so a receiver's replay window holds for retries too; the id stays the same.
public enum WebhookSignature {
    public static func headers(id: String, body: String, secret: String, at date: Date = Date()) throws -> [(String, String)] {
        guard secret.hasPrefix("whsec_"), let key = Data(base64Encoded: String(secret.dropFirst(6))), !key.isEmpty else {
            throw WebhookError(description: "the endpoint's secret is not a whsec_ key; remove the endpoint and add it again")
        }
        let timestamp = String(Int64(date.timeIntervalSince1970))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).\(body)".utf8), using: SymmetricKey(data: key))
        return [("webhook-id", id), ("webhook-timestamp", timestamp), ("webhook-signature", "v1," + Data(mac).base64EncodedString())]
    }
}
