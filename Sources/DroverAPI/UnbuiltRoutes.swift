import Hummingbird

/// Managed Agents endpoints Drover does not serve yet. Each answers 501 in the error shape,
/// never a fake success.
enum UnbuiltRoutes {
    static let prefixes: [(path: String, what: String)] = [
        ("/v1/memory_stores", "memory stores"),
        ("/v1/skills", "skills"),
        ("/v1/dreams", "dreams"),
        ("/v1/tunnels", "tunnels"),
        ("/v1/user_profiles", "user profiles"),
    ]

    /// Whether `path` is one of these routes. Their SDK calls send their own beta headers
    /// (`memory-stores-…`, `skills-…`), and must learn what is not built, not that a header is
    /// missing. None of them is called from the SDK's retry-forever loops (the environment
    /// worker's poll, ack, heartbeat and stop, the session runner's event stream and sends: all
    /// built), so a 501, which the SDK retries `max_retries` times, stays the honest answer.
    static func matches(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return prefixes.contains { prefix, _ in
            let pattern = prefix.split(separator: "/", omittingEmptySubsequences: true)
            guard parts.count >= pattern.count else { return false }
            return zip(pattern, parts).allSatisfy { wanted, part in wanted.hasPrefix(":") || wanted == part }
        }
    }

    static func add(_ router: Router<APIRequestContext>) {
        for (path, what) in prefixes {
            for pattern in [path, path + "/**"] {
                for method in [HTTPRequest.Method.get, .post, .delete] {
                    router.on(RouterPath(pattern), method: method) { _, _ -> Response in throw APIError.notBuilt(what) }
                }
            }
        }
    }
}
