import DroverCore
import DroverMetrics
import Hummingbird
import Logging
import NIOCore

/// `/metrics` alone, for the roles that serve no API (`drover worker`, `recorder`, `scheduler`
/// with `--metrics-address`). It asks for no key: it is meant for a port Prometheus alone
/// reaches, and it shows counts and durations, never content or secrets.
public enum MetricsServer {
    public static func application(
        _ exposition: MetricsExposition, host: String, port: Int, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ in await response(exposition) }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "drover"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// A scrape's answer, after every sampler has run: the API's `/metrics` answers with it too.
    static func response(_ exposition: MetricsExposition) async -> Response {
        var headers = HTTPFields()
        headers[.contentType] = MetricsExposition.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: await exposition.scrape())))
    }
}
