/// The fields of the job item each session works on, for the scripted model: a playbook fills
/// in `{{field}}` from them, though the model sees only the conversation. The batch runner
/// binds a session when it starts or resumes it; the brain names the session in each model
/// request (`x-drover-session`, sent to the scripted model only).
public final class ScriptedItemFields: Sendable {
    private let bySession = Locked<[String: [String: String]]>([:])

    public init() {}

    public func bind(_ session: SessionID, fields: [String: String]) {
        bySession.withLock { $0[session.rawValue] = fields }
    }

    public func fields(of session: String) -> [String: String] {
        bySession.withLock { $0[session] ?? [:] }
    }

    /// The header that names the session in a request to the scripted model.
    public static let sessionHeader = "x-drover-session"
}
