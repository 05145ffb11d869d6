"""MCP servers on agents made through the SDK: the worker reaches a real FastMCP server (behind a
bearer token) with the token of a `static_bearer` credential in the session's vaults, never
sends it for a session without one, and refuses servers at addresses a worker must not reach."""
import base64
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from anthropic.types.beta import BetaManagedAgentsAgent
from anthropic.types.beta.vaults import BetaManagedAgentsCredential

from conftest import ROOT, final_answer, free_port, sandboxed_server, validate

PLAYBOOK = """
playbook:
  steps:
    - tool: mcp__calc__add
      input: {a: 2, b: 3}
  final: "OUT<{{result_1}}>"
"""

TOKEN = f"mcp-token-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def mcp_url():
    """Tests/mcp/server.py over streamable HTTP on loopback, answering 401 without TOKEN."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="drover-mcp-", suffix=".log") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "Tests" / "mcp" / "server.py"), "http", str(port)],
                                  env=dict(os.environ, MCP_BEARER=TOKEN), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while b"Uvicorn running" not in Path(log.name).read_bytes():
            assert server.poll() is None and time.time() < deadline, Path(log.name).read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def mcp_server(mcp_url):
    with sandboxed_server("drover-mcp-", PLAYBOOK, env_extra={"DROVER_INTERNAL_HOSTS": "127.0.0.1"}) as server:
        yield server


def answer(server, agent_id, **session):
    client = server.client()
    environment = client.beta.environments.create(name=f"e-{uuid.uuid4().hex[:8]}")
    created = client.beta.sessions.create(agent=agent_id, environment_id=environment.id, **session)
    client.beta.sessions.events.send(created.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "add"}]}])
    return created.id, final_answer(client, created.id)


def agent_for(client, url):
    return client.beta.agents.create(
        name="calculator", model="claude-sonnet-4-5",
        mcp_servers=[{"type": "url", "name": "calc", "url": url}],
        tools=[{"type": "mcp_toolset", "mcp_server_name": "calc", "default_config": {"permission_policy": {"type": "always_allow"}}}])


def test_a_vault_token_reaches_the_server_and_nothing_else(mcp_server, mcp_url):
    client = mcp_server.client()
    agent = agent_for(client, mcp_url)
    validate(BetaManagedAgentsAgent, mcp_server.raw("GET", f"/v1/agents/{agent.id}").json())
    assert agent.mcp_servers[0].url == mcp_url
    vault = client.beta.vaults.create(display_name="mcp")
    client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "mcp_server_url": mcp_url, "token": TOKEN})

    with_token, text = answer(mcp_server, agent.id, vault_ids=[vault.id])
    assert "the sum of 2 and 3 is 5" in text, text

    # Without the vault the worker sends no token, and the server's 401 comes back with the fix.
    without, text = answer(mcp_server, agent.id)
    assert "the sum" not in text and "static_bearer credential for" in text, text

    # The token is nowhere Drover writes: SQLite, Redis' AOF, the logs, the session's events.
    root = mcp_server.data_dir.parent
    for path in root.rglob("*"):
        if path.is_file() and not path.is_socket() and path.name != "disk.img":
            assert TOKEN.encode() not in path.read_bytes(), f"the token is in {path}"
    for session_id in (with_token, without):
        assert TOKEN not in mcp_server.raw("GET", f"/v1/sessions/{session_id}/events?limit=1000").text


def test_servers_a_worker_must_not_reach_are_refused(mcp_server):
    client = mcp_server.client()
    port = mcp_server.base_url.rsplit(":", 1)[1]
    for url, reason in [(f"http://127.0.0.1:{port}/mcp", "Drover endpoint"), ("http://169.254.169.254/mcp", "link-local"),
                        ("http://10.0.0.1/mcp", "private")]:
        agent = agent_for(client, url)
        _, text = answer(mcp_server, agent.id)
        assert "the worker does not connect to calc" in text and reason in text, (url, text)
    # A stdio server from the API would be a command on the worker's host.
    refused = mcp_server.raw("POST", "/v1/agents", body={
        "name": "x", "model": "m", "mcp_servers": [{"type": "stdio", "name": "sh", "command": ["sh", "-c", "id"]}]})
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("mcp_servers[0].type:"), refused.text


class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """An OAuth token endpoint: the refresh-token grant, with client_secret_basic."""
    grants: list = []

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("content-length") or 0)).decode())
        expected = "Basic " + base64.b64encode(b"drover-client:client-secret").decode()
        TokenEndpoint.grants.append((form.get("grant_type"), form.get("refresh_token"), self.headers.get("authorization") == expected))
        if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != ["refresh-1"] or self.headers.get("authorization") != expected:
            body, status = b'{"error": "invalid_grant"}', 400
        else:
            body, status = json.dumps({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600, "refresh_token": "refresh-2"}).encode(), 200
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_mcp_oauth_token_about_to_expire_is_refreshed_and_kept_sealed(mcp_server, mcp_url):
    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        client = mcp_server.client()
        vault = client.beta.vaults.create(display_name="oauth")
        soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
        credential = client.beta.vaults.credentials.create(vault.id, auth={
            "type": "mcp_oauth", "mcp_server_url": mcp_url, "access_token": "expired-access", "expires_at": soon,
            "refresh": {"client_id": "drover-client", "refresh_token": "refresh-1",
                        "token_endpoint": f"http://127.0.0.1:{endpoint.server_address[1]}/token",
                        "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "client-secret"}, "scope": "tools"}})
        shown = mcp_server.raw("GET", f"/v1/vaults/{vault.id}/credentials/{credential.id}")
        validate(BetaManagedAgentsCredential, shown.json())
        assert credential.auth.type == "mcp_oauth" and credential.auth.refresh.token_endpoint_auth.type == "client_secret_basic"
        for secret in ("expired-access", "refresh-1", "client-secret"):
            assert secret not in shown.text

        agent = agent_for(client, mcp_url)
        _, text = answer(mcp_server, agent.id, vault_ids=[vault.id])
        assert "the sum of 2 and 3 is 5" in text, text
        assert TokenEndpoint.grants == [(["refresh_token"], ["refresh-1"], True)], TokenEndpoint.grants
        refreshed = client.beta.vaults.credentials.retrieve(credential.id, vault_id=vault.id)
        assert refreshed.auth.expires_at > datetime.now(timezone.utc) + timedelta(minutes=50), refreshed.auth.expires_at
        # The next session uses the refreshed token without asking the endpoint again.
        _, text = answer(mcp_server, agent.id, vault_ids=[vault.id])
        assert "the sum of 2 and 3 is 5" in text and len(TokenEndpoint.grants) == 1, text

        # Update: a new client secret is merged in; what is left out stays.
        updated = mcp_server.raw("POST", f"/v1/vaults/{vault.id}/credentials/{credential.id}", body={
            "auth": {"type": "mcp_oauth", "refresh": {"token_endpoint_auth": {"type": "client_secret_post", "client_secret": "s2"}}}})
        assert updated.status_code == 200, updated.text
        assert updated.json()["auth"]["refresh"]["token_endpoint_auth"]["type"] == "client_secret_basic"
        past = mcp_server.raw("POST", f"/v1/vaults/{vault.id}/credentials/{credential.id}",
                              body={"auth": {"type": "mcp_oauth", "expires_at": "2020-01-01T00:00:00Z"}})
        assert past.status_code == 400 and past.json()["error"]["message"].startswith("auth.expires_at:"), past.text
    finally:
        endpoint.shutdown()

    root = mcp_server.data_dir.parent
    for path in root.rglob("*"):
        if path.is_file() and not path.is_socket() and path.name != "disk.img":
            data = path.read_bytes()
            for secret in (b"refresh-2", b"client-secret", TOKEN.encode()):
                assert secret not in data, f"{secret} is in {path}"
