import DroverCore
import Hummingbird

/// The request context: Hummingbird's core plus the workspace the caller's key belongs to.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthenticationMiddleware` before any `/v1` handler runs.
    public var workspace = "" {
        didSet { caller.workspace = workspace }
    }
    /// The environment whose worker key made the request (`EnvironmentKeyScope`); nil for an
    /// API key or local mode.
    var environmentGrant: String?
    /// The console's signed-in key (nil in local mode), for its CSRF token.
    var consoleKey: String?
    /// A console POST's form fields, read once by `ConsoleAccess` to check its CSRF token.
    var consoleForm: [String: String] = [:]
    /// Who called, for the request log, which runs outside the middleware that finds out: a
    /// context is copied inward, this box is shared.
    let caller = Caller()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { APIServer.maximumBodyBytes }
}

/// What the request log learns of a request from inside the middleware chain.
final class Caller: Sendable {
    private let box = Locked("")

    var workspace: String {
        get { box.value }
        set { box.withLock { $0 = newValue } }
    }
}
