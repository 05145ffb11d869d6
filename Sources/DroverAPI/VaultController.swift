import DroverControlPlane
import DroverCore
import DroverDatabase
import Foundation
import Hummingbird

/// `/v1/vaults` and `/v1/vaults/{id}/credentials`: vaults, and credentials whose secrets are
/// write-only. A secret is sealed (`VaultKeyring`) before it reaches SQLite, and no response,
/// error or log line carries it.
struct VaultController: Sendable {
    let store: ControlPlaneStore
    let keyring: @Sendable () throws -> VaultKeyring
    /// Every change to a vault or its credentials is published for workers on other hosts.
    let replica: ControlPlaneReplica
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.post(use: create)
            .get(use: list)
            .get(":vault_id", use: retrieve)
            .post(":vault_id", use: update)
            .post(":vault_id/archive", use: archive)
            .delete(":vault_id", use: delete)
            .post(":vault_id/credentials", use: createCredential)
            .get(":vault_id/credentials", use: listCredentials)
            .get(":vault_id/credentials/:credential_id", use: retrieveCredential)
            .post(":vault_id/credentials/:credential_id", use: updateCredential)
            .post(":vault_id/credentials/:credential_id/archive", use: archiveCredential)
            .delete(":vault_id/credentials/:credential_id", use: deleteCredential)
            .post(":vault_id/credentials/:credential_id/mcp_oauth_validate", use: validate)
    }

    // MARK: Vaults

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(VaultRequest.self, from: request, context: context)
        guard let name = params.displayName else { throw APIError.invalid("display_name", "is required (1 to 255 characters)") }
        let now = ControlPlaneStore.timestamp()
        let vault: [String: JSONValue] = [
            "type": "vault", "id": .string(Identifier.make(prefix: "vlt")), "display_name": .string(name),
            "metadata": try patchMetadata(nil, params.metadataPatch ?? [:]), "created_at": .string(now), "updated_at": .string(now),
            "archived_at": .null,
        ]
        try await store.insert(.vaults, resource: vault, workspace: context.workspace, createdAt: now)
        return jsonResponse(.object(vault))
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let paging = try PageQuery(input)
        let rows = try await store.list(
            .vaults, workspace: context.workspace, includeArchived: try input.bool("include_archived"), offset: paging.offset, limit: paging.fetch)
        return jsonResponse(paging.page(rows) { .object($0.json) })
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(.object(try await vault(context).json))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(VaultRequest.self, from: request, context: context)
        let current = try await liveVault(context)
        var vault = current.json
        if let name = params.displayName { vault["display_name"] = .string(name) }
        if let patch = params.metadataPatch { vault["metadata"] = try patchMetadata(vault["metadata"], patch) }
        vault["updated_at"] = .string(ControlPlaneStore.timestamp())
        try await store.update(.vaults, id: current.id, workspace: context.workspace, resource: JSONValue.object(vault).compactJSON, archivedAt: nil)
        return jsonResponse(.object(vault))
    }

    @Sendable func archive(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await vault(context)
        let archived = try await store.archive(.vaults, current, workspace: context.workspace)
        try await replica.publish(vault: current.id, from: store)
        return jsonResponse(.object(archived))
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await vault(context)
        _ = try await store.deleteVault(current.id, workspace: context.workspace)
        try await replica.publish(vault: current.id, from: store)
        return jsonResponse(.object(["id": .string(current.id), "type": "vault_deleted"]))
    }

    private func vault(_ context: APIRequestContext) async throws -> ControlPlaneStore.Row {
        try await lookup.vault(context.parameters.require("vault_id"), workspace: context.workspace)
    }

    private func liveVault(_ context: APIRequestContext) async throws -> ControlPlaneStore.Row {
        let vault = try await vault(context)
        guard vault.archivedAt == nil else {
            throw APIError(.badRequest, "invalid_request_error", "vault \(vault.id) is archived and cannot be changed", errorCode: "vault_archived")
        }
        return vault
    }

    // MARK: Credentials

    @Sendable func createCredential(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(CreateCredentialRequest.self, from: request, context: context)
        let vault = try await liveVault(context)
        if let name = params.auth.shown["secret_name"]?.stringValue {
            let live = try await store.credentials(vault: vault.id, workspace: context.workspace, includeArchived: false, offset: 0, limit: 10_000)
            if live.contains(where: { $0.json["auth"]?.objectValue?["secret_name"]?.stringValue == name }) {
                throw APIError.invalid(
                    "auth.secret_name", "vault \(vault.id) already has a credential for \(name)", fix: "update that credential, or archive it first")
            }
        }
        let now = ControlPlaneStore.timestamp()
        let id = Identifier.make(prefix: "vcrd")
        let credential: [String: JSONValue] = [
            "type": "vault_credential", "id": .string(id), "vault_id": .string(vault.id), "auth": .object(params.auth.shown),
            "display_name": params.displayName.map(JSONValue.string) ?? .null,
            "metadata": try patchMetadata(nil, params.metadata ?? [:]), "created_at": .string(now), "updated_at": .string(now),
            "archived_at": .null,
        ]
        let (sealed, keyID) = try keyring().seal(fields: params.auth.secret ?? [:], binding: id)
        try await store.insertCredential(
            .init(
                id: id, vault: vault.id, workspace: context.workspace, createdAt: now, resource: JSONValue.object(credential).compactJSON,
                sealed: sealed, keyID: keyID))
        try await replica.publish(vault: vault.id, from: store)
        return jsonResponse(.object(credential))
    }

    @Sendable func listCredentials(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let paging = try PageQuery(input)
        let vault = try await vault(context)
        let rows = try await store.credentials(
            vault: vault.id, workspace: context.workspace, includeArchived: try input.bool("include_archived"), offset: paging.offset,
            limit: paging.fetch)
        return jsonResponse(paging.page(rows) { .object($0.json) })
    }

    @Sendable func retrieveCredential(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(.object(try await credential(context).json))
    }

    @Sendable func updateCredential(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(UpdateCredentialRequest.self, from: request, context: context)
        _ = try await liveVault(context)
        let current = try await credential(context)
        guard current.archivedAt == nil else {
            throw APIError(
                .badRequest, "invalid_request_error", "credential \(current.id) is archived and cannot be changed", errorCode: "credential_archived")
        }
        var credential = current.json
        var sealed: (Data, String)?
        if let auth = params.auth {
            let changed = try CredentialAuth.updating(auth, current: credential["auth"]?.objectValue ?? [:])
            credential["auth"] = .object(changed.shown)
            if let patch = changed.secret {
                let keyring = try keyring()
                let stored = try keyring.openFields(current.sealed, keyID: current.keyID, binding: current.id)
                sealed = try keyring.seal(fields: stored.merging(patch) { _, new in new }, binding: current.id)
            }
        }
        if let name = params.displayName { credential["display_name"] = name.map(JSONValue.string) ?? .null }
        if let patch = params.metadataPatch { credential["metadata"] = try patchMetadata(credential["metadata"], patch) }
        credential["updated_at"] = .string(ControlPlaneStore.timestamp())
        try await store.updateCredential(
            current.id, workspace: context.workspace, resource: JSONValue.object(credential).compactJSON, sealed: sealed, archivedAt: nil)
        try await replica.publish(vault: current.vault, from: store)
        return jsonResponse(.object(credential))
    }

    @Sendable func archiveCredential(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await credential(context)
        let archivedAt = current.archivedAt ?? ControlPlaneStore.timestamp()
        try await store.updateCredential(current.id, workspace: context.workspace, resource: nil, sealed: nil, archivedAt: archivedAt)
        try await replica.publish(vault: current.vault, from: store)
        var credential = current.json
        credential["archived_at"] = .string(archivedAt)
        return jsonResponse(.object(credential))
    }

    @Sendable func deleteCredential(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await credential(context)
        _ = try await store.deleteCredential(current.id, vault: current.vault, workspace: context.workspace)
        try await replica.publish(vault: current.vault, from: store)
        return jsonResponse(.object(["id": .string(current.id), "type": "vault_credential_deleted"]))
    }

    @Sendable func validate(_ request: Request, context: APIRequestContext) async throws -> Response {
        _ = try await credential(context)
        throw APIError.notBuilt("mcp_oauth credential validation")
    }

    private func credential(_ context: APIRequestContext) async throws -> ControlPlaneStore.CredentialRow {
        let vault = try await vault(context)
        let id = try ResourceID.check(try context.parameters.require("credential_id"), prefix: "vcrd", parameter: "credential_id")
        guard let row = try await store.credential(id, vault: vault.id, workspace: context.workspace) else {
            throw APIError.notFound("credential", id)
        }
        return row
    }
}
