"""Vaults and credentials through the SDK: every response validates against its models, secrets
are write-only (never in a response, an error, SQLite in clear text, Redis or the logs), and
sessions name the vaults they may use."""
import uuid
from pathlib import Path

import pytest
from anthropic.types.beta import BetaManagedAgentsDeletedVault, BetaManagedAgentsVault
from anthropic.types.beta.vaults import BetaManagedAgentsCredential, BetaManagedAgentsDeletedCredential

from conftest import validate


def everything_on_disk(data_dir: Path) -> bytes:
    """Every byte Drover keeps in its data directory: SQLite (and its WAL), Redis' AOF, logs."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file() and not p.is_socket())


def test_vault_lifecycle_validates_against_the_sdk(server):
    client = server.client()
    vault = client.beta.vaults.create(display_name="grading", metadata={"course": "cs101"})
    assert vault.id.startswith("vlt_") and vault.display_name == "grading" and vault.archived_at is None
    validate(BetaManagedAgentsVault, server.raw("GET", f"/v1/vaults/{vault.id}").json())
    updated = client.beta.vaults.update(vault.id, display_name="grading-2", metadata={"course": None, "term": "fall"})
    assert updated.display_name == "grading-2" and updated.metadata == {"term": "fall"}
    assert vault.id in [v.id for v in client.beta.vaults.list(limit=100).data]
    archived = client.beta.vaults.archive(vault.id)
    assert archived.archived_at is not None
    assert vault.id not in [v.id for v in client.beta.vaults.list(limit=100).data]
    assert vault.id in [v.id for v in client.beta.vaults.list(limit=100, include_archived=True).data]
    refused = server.raw("POST", f"/v1/vaults/{vault.id}", body={"display_name": "x"})
    assert refused.status_code == 400 and refused.json()["error"]["message"].endswith("archived and cannot be changed"), refused.text
    deleted = server.raw("DELETE", f"/v1/vaults/{vault.id}").json()
    validate(BetaManagedAgentsDeletedVault, deleted)
    assert server.raw("GET", f"/v1/vaults/{vault.id}").status_code == 404
    # Another workspace sees none of it.
    other = client.beta.vaults.create(display_name="alpha only")
    assert server.raw("GET", f"/v1/vaults/{other.id}", workspace="beta").status_code == 404


def test_secrets_are_write_only_and_sealed_at_rest(server):
    client = server.client()
    canary = f"CANARY-{uuid.uuid4().hex}"
    token = f"TOKEN-{uuid.uuid4().hex}"
    vault = client.beta.vaults.create(display_name="secrets")
    variable = client.beta.vaults.credentials.create(
        vault.id, display_name="github",
        auth={"type": "environment_variable", "secret_name": "GITHUB_TOKEN", "secret_value": canary,
              "networking": {"type": "limited", "allowed_hosts": ["api.github.com", "*.githubusercontent.com"]}})
    assert variable.id.startswith("vcrd_") and variable.vault_id == vault.id
    assert variable.auth.type == "environment_variable" and variable.auth.secret_name == "GITHUB_TOKEN"
    assert variable.auth.injection_location.header is True and variable.auth.injection_location.body is False
    bearer = client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": token})
    assert bearer.auth.type == "static_bearer" and bearer.auth.mcp_server_url == "https://mcp.example.com/mcp"

    responses = [
        server.raw("GET", f"/v1/vaults/{vault.id}/credentials/{variable.id}"),
        server.raw("GET", f"/v1/vaults/{vault.id}/credentials/{bearer.id}"),
        server.raw("GET", f"/v1/vaults/{vault.id}/credentials"),
    ]
    for response in responses[:2]:
        validate(BetaManagedAgentsCredential, response.json())
    for credential in responses[2].json()["data"]:
        validate(BetaManagedAgentsCredential, credential)

    # Rotating the secret and narrowing where it goes; the type and the name cannot change.
    rotated = f"CANARY-{uuid.uuid4().hex}"
    changed = client.beta.vaults.credentials.update(
        variable.id, vault_id=vault.id,
        auth={"type": "environment_variable", "secret_value": rotated, "injection_location": {"body": True}})
    assert changed.auth.injection_location.header is True and changed.auth.injection_location.body is True
    assert changed.auth.networking.allowed_hosts == ["api.github.com", "*.githubusercontent.com"]
    responses.append(server.raw("GET", f"/v1/vaults/{vault.id}/credentials/{variable.id}"))
    wrong_type = server.raw("POST", f"/v1/vaults/{vault.id}/credentials/{variable.id}", body={"auth": {"type": "static_bearer", "token": "x"}})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["message"].startswith("auth.type:"), wrong_type.text
    rename = server.raw("POST", f"/v1/vaults/{vault.id}/credentials/{variable.id}",
                        body={"auth": {"type": "environment_variable", "secret_name": "OTHER"}})
    assert rename.status_code == 400 and "auth.secret_name" in rename.json()["error"]["message"], rename.text
    # A bad secret is named, never echoed.
    bad = server.raw("POST", f"/v1/vaults/{vault.id}/credentials",
                     body={"auth": {"type": "static_bearer", "mcp_server_url": "https://x.example/mcp", "token": 12345}})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("auth.token:") and "12345" not in bad.text
    duplicate = server.raw("POST", f"/v1/vaults/{vault.id}/credentials", body={"auth": {
        "type": "environment_variable", "secret_name": "GITHUB_TOKEN", "secret_value": "s", "networking": {"type": "unrestricted"}}})
    assert duplicate.status_code == 400 and "already has a credential for GITHUB_TOKEN" in duplicate.text
    # An mcp_oauth credential needs its access token (the refresh is covered in test_mcp_servers.py).
    oauth = server.raw("POST", f"/v1/vaults/{vault.id}/credentials", body={"auth": {"type": "mcp_oauth", "mcp_server_url": "https://x.example"}})
    assert oauth.status_code == 400 and oauth.json()["error"]["message"].startswith("auth.access_token:"), oauth.text
    validate_oauth = server.raw("POST", f"/v1/vaults/{vault.id}/credentials/{bearer.id}/mcp_oauth_validate")
    assert validate_oauth.status_code == 501

    for response in responses:
        for secret in (canary, rotated, token):
            assert secret not in response.text
    on_disk = everything_on_disk(server.data_dir)
    for secret in (canary, rotated, token):
        assert secret.encode() not in on_disk, "a secret is in the data directory in clear text"

    archived = client.beta.vaults.credentials.archive(bearer.id, vault_id=vault.id)
    assert archived.archived_at is not None
    assert client.beta.vaults.credentials.retrieve(bearer.id, vault_id=vault.id).archived_at == archived.archived_at
    assert [c.id for c in client.beta.vaults.credentials.list(vault.id).data] == [variable.id]
    deleted = server.raw("DELETE", f"/v1/vaults/{vault.id}/credentials/{bearer.id}").json()
    validate(BetaManagedAgentsDeletedCredential, deleted)
    # The vault of another workspace, and a credential through another vault, are not found.
    assert server.raw("GET", f"/v1/vaults/{vault.id}/credentials/{variable.id}", workspace="beta").status_code == 404
    elsewhere = client.beta.vaults.create(display_name="elsewhere")
    assert server.raw("GET", f"/v1/vaults/{elsewhere.id}/credentials/{variable.id}").status_code == 404


def test_sessions_name_the_vaults_they_may_use(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    vault = client.beta.vaults.create(display_name="for sessions")
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[vault.id])
    assert session.vault_ids == [vault.id]
    assert client.beta.sessions.retrieve(session.id).vault_ids == [vault.id]
    second = client.beta.vaults.create(display_name="second")
    assert client.beta.sessions.update(session.id, vault_ids=[second.id, vault.id]).vault_ids == [second.id, vault.id]
    missing = server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id, "vault_ids": ["vlt_missing"]})
    assert missing.status_code == 404, missing.text
    theirs = server.client("beta").beta.vaults.create(display_name="beta's")
    stolen = server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id, "vault_ids": [theirs.id]})
    assert stolen.status_code == 404, stolen.text
    client.beta.vaults.archive(second.id)
    archived = server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id, "vault_ids": [second.id]})
    assert archived.status_code == 400 and archived.json()["error"]["message"].startswith("vault_ids[0]:"), archived.text
    malformed = server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id, "vault_ids": [42]})
    assert malformed.status_code == 400 and malformed.json()["error"]["message"].startswith("vault_ids[0]:"), malformed.text


@pytest.mark.parametrize("auth, field", [
    ({"type": "environment_variable", "secret_name": "1BAD", "secret_value": "s", "networking": {"type": "unrestricted"}}, "auth.secret_name"),
    ({"type": "environment_variable", "secret_name": "OK", "secret_value": "s"}, "auth.networking"),
    ({"type": "environment_variable", "secret_name": "OK", "secret_value": "s",
      "networking": {"type": "limited", "allowed_hosts": ["https://api.example.com"]}}, "auth.networking.allowed_hosts[0]"),
    ({"type": "environment_variable", "secret_name": "OK", "secret_value": "s", "networking": {"type": "unrestricted"},
      "injection_location": {"header": False, "body": False}}, "auth.injection_location"),
    ({"type": "static_bearer", "mcp_server_url": "ftp://x", "token": "t"}, "auth.mcp_server_url"),
    ({"type": "static_bearer", "mcp_server_url": "https://x.example/mcp"}, "auth.token"),
    ({"type": "password"}, "auth.type"),
])
def test_bad_credentials_name_the_field(server, auth, field):
    vault = server.client().beta.vaults.create(display_name="bad input")
    response = server.raw("POST", f"/v1/vaults/{vault.id}/credentials", body={"auth": auth})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(field + ":"), response.text


def test_rotating_the_key_seals_every_secret_again(server):
    client = server.client()
    vault = client.beta.vaults.create(display_name="rotation")
    credential = client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": "t0ken"})
    key_file = server.data_dir / "vault.key"
    before = key_file.read_text()
    server.drover("vaults", "rotate-key")
    assert key_file.read_text() != before and not (server.data_dir / "vault.key.previous").exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    # Everything is under the new key already; the running API writes under it too.
    assert "sealed 0 credential(s)" in server.drover_stderr("vaults", "rekey")
    after = client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://mcp2.example.com/mcp", "token": "t1ken"})
    assert "sealed 0 credential(s)" in server.drover_stderr("vaults", "rekey")
    assert client.beta.vaults.credentials.retrieve(credential.id, vault_id=vault.id).id == credential.id and after.id
