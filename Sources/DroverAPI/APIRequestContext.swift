import Hummingbird

/// The request context: Hummingbird's core plus the workspace the caller's key belongs to.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthenticationMiddleware` before any `/v1` handler runs.
    public var workspace = ""

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { APIServer.maximumBodyBytes }
}
