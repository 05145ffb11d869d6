import DroverCore
import DroverDatabase
import DroverEgress
import Foundation

/// A session's `github_repository` resource as the API takes it: the part the session shows (the
/// SDK's `BetaManagedAgentsGitHubRepositoryResource`) and its token, which is sealed apart from
/// the session and never shown. Any git smart-HTTP host is accepted, not only github.com.
struct RepositoryResource {
    var resource: [String: JSONValue]
    let token: String?
    /// The clone's path relative to /workspace.
    let relativePath: String

    var id: String { resource["id"]?.stringValue ?? "" }

    static func parse(_ fields: [String: JSONValue], field: String, now: String) throws -> RepositoryResource {
        try fields.rejectUnknown(["type", "url", "authorization_token", "checkout", "mount_path"], prefix: field)
        let urlFix = "give the repository's https URL, such as https://github.com/owner/repo"
        guard case .string(let url)? = fields["url"] else { throw APIError.invalid("\(field).url", "is required and must be a string", fix: urlFix) }
        guard url.utf8.count <= 2048, let components = URLComponents(string: url), components.user == nil, components.password == nil,
            components.query == nil, components.fragment == nil, EgressRepository(resourceID: "-", url: url, token: nil) != nil
        else {
            throw APIError.invalid(
                "\(field).url", "'\(url.prefix(200))' is not a repository URL (http or https, a host and a path, no credentials or query)",
                fix: urlFix + "; put a token in authorization_token, not in the URL")
        }
        let token = try Self.token(fields["authorization_token"], field: "\(field).authorization_token")
        let checkout = try Self.checkout(fields["checkout"], field: "\(field).checkout")
        let relative: String
        switch fields["mount_path"] {
        case nil, .null?:
            var name = components.path.split(separator: "/").last.map(String.init) ?? "repository"
            if name.hasSuffix(".git") { name.removeLast(4) }
            relative = try UploadedFiles.mountPath(name.isEmpty ? "repository" : name, field: "\(field).url")
        case .string(let text)?: relative = try UploadedFiles.mountPath(text, field: "\(field).mount_path")
        case let other?: throw APIError.invalid("\(field).mount_path", "must be a string, got \(other.kindName)")
        }
        return RepositoryResource(
            resource: [
                "type": "github_repository", "id": .string(Identifier.make(prefix: "sesrsc")), "url": .string(url), "checkout": checkout,
                "mount_path": .string("/workspace/" + relative), "created_at": .string(now), "updated_at": .string(now),
            ], token: token, relativePath: relative)
    }

    /// An `authorization_token`: nil when absent or null. Never echoed.
    static func token(_ value: JSONValue?, field: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            guard !text.isEmpty, text.utf8.count <= 4096, !text.contains(where: { $0.isNewline || $0 == "\0" }) else {
                throw APIError.invalid(field, "must be 1 byte to 4 KiB on one line (its value is not shown here)")
            }
            return text
        case let other?: throw APIError.invalid(field, "must be a string, got \(other.kindName)")
        }
    }

    /// `{"type": "branch", "name"}` or `{"type": "commit", "sha"}` (a full SHA-1 or SHA-256), or null.
    static func checkout(_ value: JSONValue?, field: String) throws -> JSONValue {
        guard let value, value != .null else { return .null }
        guard let fields = value.objectValue else { throw APIError.invalid(field, "must be an object or null") }
        switch fields["type"]?.stringValue {
        case "branch":
            try fields.rejectUnknown(["type", "name"], prefix: field)
            guard case .string(let name)? = fields["name"], Self.isBranchName(name) else {
                throw APIError.invalid(
                    "\(field).name", "must be a branch name", fix: "letters, digits and . _ - /, not starting with - or /, without ..")
            }
            return .object(["type": "branch", "name": .string(name)])
        case "commit":
            try fields.rejectUnknown(["type", "sha"], prefix: field)
            guard case .string(let sha)? = fields["sha"], [40, 64].contains(sha.count), sha.allSatisfy(\.isHexDigit) else {
                throw APIError.invalid("\(field).sha", "must be a full commit SHA (40 hex digits)")
            }
            return .object(["type": "commit", "sha": .string(sha.lowercased())])
        default:
            throw APIError.invalid("\(field).type", "must be branch or commit")
        }
    }

    /// A conservative subset of git's ref names: nothing a shell or git could read as an option.
    static func isBranchName(_ name: String) -> Bool {
        guard (1...255).contains(name.utf8.count), !name.hasPrefix("-"), !name.hasPrefix("/"), !name.hasSuffix("/"), !name.hasSuffix(".lock"),
            !name.contains(".."), !name.contains("//"), !name.hasSuffix(".")
        else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/".unicodeScalars.contains($0))
        }
    }
}

extension ControlPlaneStore {
    /// Seals a repository resource's token with the vault key, bound to the resource's id.
    func saveRepositoryToken(
        _ repository: RepositoryResource, session: String, workspace: String, keyring: (@Sendable () throws -> VaultKeyring)?
    ) async throws {
        guard let token = repository.token else { return }
        guard let keyring else {
            throw APIError.notBuilt("repository tokens without a vault key (Options.vaultKeyring)")
        }
        let (sealed, keyID) = try keyring().seal(Data(token.utf8), binding: repository.id)
        try await saveRepositoryToken(resource: repository.id, session: session, workspace: workspace, sealed: sealed, keyID: keyID)
    }
}
