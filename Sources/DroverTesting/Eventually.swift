/// Polls `condition`, sleeping between looks rather than blocking a thread, until it holds or
/// `limit` has passed, and says whether it held. Tests wait on conditions with generous
/// deadlines; they never assert how long something took.
public func eventually(
    within limit: Duration = .seconds(15), polling interval: Duration = .milliseconds(5),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
