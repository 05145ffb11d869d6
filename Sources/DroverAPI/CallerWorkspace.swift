import DroverDatabase

/// Whose a request is, for the API and the console alike: in local mode (no active key) the
/// local workspace, but only for a request addressed to a loopback host name; otherwise the
/// workspace of the key it carries, or nobody.
struct CallerWorkspace: Sendable {
    let store: ControlPlaneStore
    let localWorkspaceID: String

    /// The workspace, and the key that resolved it (nil in local mode); nil when keys exist and
    /// `key` is none of them.
    func resolve(key: String?, authority: String?) async throws -> (workspace: String, key: String?)? {
        if try await store.activeKeyCount() == 0 {
            // A page on another site whose name re-resolves to 127.0.0.1 (DNS rebinding) would
            // otherwise reach local mode's keyless API and console from the user's browser.
            guard APIServer.isLoopbackAuthority(authority) else {
                throw APIError(
                    .forbidden, "permission_error",
                    "Host: in local mode (no API keys) Drover answers only requests to localhost, 127.0.0.1 or [::1]. Fix: use one of those names, or create an API key (`drover keys create`) to reach it by another"
                )
            }
            return (localWorkspaceID, nil)
        }
        guard let key, !key.isEmpty, let workspace = try await store.workspace(forKey: key) else { return nil }
        return (workspace, key)
    }
}
