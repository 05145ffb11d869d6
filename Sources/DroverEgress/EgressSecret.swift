import DroverTools
import Foundation
import NIOCore
import NIOHTTP1

/// One `environment_variable` credential as the egress proxy holds it: the placeholder the
/// sandbox sees in its variable, and the secret the proxy puts in its place, only on requests
/// to the credential's hosts and only where its `injection_location` allows.
///
/// The secret exists here, in the worker's memory, and nowhere a sandbox can read. Nothing
/// prints it: `description` names the credential, never the value.
public struct EgressSecret: Sendable, CustomStringConvertible {
    public let credentialID: String
    public let vaultID: String
    /// The variable's name in the sandbox.
    public let variable: String
    public let placeholder: String
    let value: [UInt8]
    /// The hosts the secret may be sent to; nil for any host the environment's policy allows.
    public let hosts: [HostPattern]?
    public let inHeaders: Bool
    public let inBody: Bool

    public init(
        credentialID: String, vaultID: String, variable: String, value: String, hosts: [HostPattern]?, inHeaders: Bool, inBody: Bool
    ) {
        self.credentialID = credentialID
        self.vaultID = vaultID
        self.variable = variable
        self.placeholder = Self.placeholder(credential: credentialID)
        self.value = Array(value.utf8)
        self.hosts = hosts
        self.inHeaders = inHeaders
        self.inBody = inBody
    }

    /// The value a sandbox sees for the credential. It is stable for a credential, so a shell
    /// state saved in one sandbox is right in the next, and it is only ever replaced on the
    /// route of a session that holds the credential: naming another session's placeholder
    /// gains nothing.
    public static func placeholder(credential: String) -> String {
        "drover_placeholder_" + credential.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" }
    }

    public var description: String { "EgressSecret(\(credentialID) as $\(variable), value withheld)" }

    public func applies(to host: String) -> Bool {
        guard let hosts else { return true }
        return hosts.contains { $0.matches(host) }
    }
}

/// Replaces placeholders with secrets in one request bound for one host.
struct SecretSubstitution {
    let secrets: [EgressSecret]

    /// The secrets of `all` that may go to `host`; nil when none may.
    init?(_ all: [EgressSecret], host: String) {
        let applicable = all.filter { $0.applies(to: host) }
        guard !applicable.isEmpty else { return nil }
        secrets = applicable
    }

    var touchesBody: Bool { secrets.contains(where: \.inBody) }

    /// Header values with the placeholders of header secrets replaced, including inside a Basic
    /// authorization's user and password (how git and pip send a token).
    func headers(_ headers: HTTPHeaders) -> (HTTPHeaders, replaced: Int) {
        let inHeaders = secrets.filter(\.inHeaders)
        guard !inHeaders.isEmpty else { return (headers, 0) }
        var result = HTTPHeaders()
        var replaced = 0
        for (name, value) in headers {
            var bytes = Array(value.utf8)
            replaced += Self.replace(in: &bytes, inHeaders)
            if name.lowercased() == "authorization" || name.lowercased() == "proxy-authorization" {
                replaced += Self.replaceInBasic(&bytes, inHeaders)
            }
            result.add(name: name, value: String(decoding: bytes, as: UTF8.self))
        }
        return (result, replaced)
    }

    /// The body with the placeholders of body secrets replaced.
    func body(_ body: inout [UInt8]) -> Int {
        Self.replace(in: &body, secrets.filter(\.inBody))
    }

    private static func replace(in bytes: inout [UInt8], _ secrets: [EgressSecret]) -> Int {
        var count = 0
        for secret in secrets {
            let needle = Array(secret.placeholder.utf8)
            guard bytes.count >= needle.count else { continue }
            var output: [UInt8] = []
            var index = 0
            var found = false
            while index < bytes.count {
                if bytes[index] == needle[0], index + needle.count <= bytes.count, bytes[index..<index + needle.count].elementsEqual(needle) {
                    if !found {
                        output.reserveCapacity(bytes.count)
                        found = true
                    }
                    output += secret.value
                    index += needle.count
                    count += 1
                } else {
                    output.append(bytes[index])
                    index += 1
                }
            }
            if found { bytes = output }
        }
        return count
    }

    /// `Basic base64(user:password)`: decoded, replaced, encoded again.
    private static func replaceInBasic(_ value: inout [UInt8], _ secrets: [EgressSecret]) -> Int {
        let text = String(decoding: value, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let decoded = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces))
        else { return 0 }
        var credentials = Array(decoded)
        let count = replace(in: &credentials, secrets)
        guard count > 0 else { return 0 }
        value = Array("\(parts[0]) \(Data(credentials).base64EncodedString())".utf8)
        return count
    }
}

/// A git repository a session was given (a `github_repository` resource): the proxy lets its
/// sandbox reach the repository's smart-HTTP paths on its host, and adds the repository's token
/// to those requests, so `git fetch` and `git push` work with a remote URL that holds no token.
public struct EgressRepository: Sendable, CustomStringConvertible {
    public let resourceID: String
    public let host: String
    public let port: Int
    /// `/owner/repo`, without `.git`.
    public let path: String
    let token: [UInt8]?

    /// The repository at `url` (`https://host[:port]/owner/repo[.git]`), or nil for another URL.
    public init?(resourceID: String, url: String, token: String?) {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty,
            let scheme = components.scheme?.lowercased(), scheme == "https" || scheme == "http"
        else { return nil }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix(".git") { path.removeLast(4) }
        guard path.count > 1 else { return nil }
        self.resourceID = resourceID
        self.host = HostPattern.normalize(host)
        self.port = components.port ?? (scheme == "https" ? 443 : 80)
        self.path = path
        self.token = token.map { Array($0.utf8) }
    }

    public var description: String { "EgressRepository(\(resourceID): \(host):\(port)\(path), token withheld)" }

    func serves(host: String, port: Int) -> Bool {
        HostPattern.normalize(host) == self.host && port == self.port
    }

    /// Whether `target` (a request's path and query) is one of git's smart-HTTP requests for this
    /// repository: `info/refs`, `git-upload-pack` or `git-receive-pack`, with or without `.git`.
    func covers(_ target: String) -> Bool {
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        for base in [self.path, self.path + ".git"] {
            for endpoint in ["/info/refs", "/git-upload-pack", "/git-receive-pack"] where path == base + endpoint {
                return true
            }
        }
        return false
    }

    /// `Basic x-access-token:TOKEN`, the form GitHub, GitLab and Gitea all take for a token.
    var authorization: String? {
        token.map { "Basic " + Data(Array("x-access-token:".utf8) + $0).base64EncodedString() }
    }
}
