"""environment_variable credentials end to end: a session names a vault through the SDK, its
agent runs `curl` in a real bubblewrap sandbox with the credential's variable, and a real HTTPS
server on the host's loopback (with a certificate of its own, which the worker is told to trust)
receives the secret. The sandbox only ever holds a placeholder, and the secret is nowhere on
disk: not in SQLite, Redis' AOF, the logs, the workspaces, or the session's events."""
import hashlib
import http.server
import ssl
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from conftest import BASH_PLAYBOOK, final_answer, sandboxed_server, self_signed_certificate

PLAYBOOK = BASH_PLAYBOOK

CANARY = f"canary-{uuid.uuid4().hex}"


class Origin(http.server.BaseHTTPRequestHandler):
    """Answers with the SHA-256 of the Authorization header it got, never the header itself."""
    seen: list = []

    def do_GET(self):
        authorization = self.headers.get("authorization", "")
        Origin.seen.append((self.path, authorization))
        body = f"origin saw {self.path} authorization sha256={hashlib.sha256(authorization.encode()).hexdigest()}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tls_origin():
    """An HTTPS server on 127.0.0.1, and the path of its self-signed certificate."""
    with tempfile.TemporaryDirectory(prefix="drover-origin-") as tmp:
        cert, key = self_signed_certificate(Path(tmp))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield httpd.server_address[1], cert
        httpd.shutdown()


@pytest.fixture(scope="module")
def credential_server(tls_origin):
    _, cert = tls_origin
    with sandboxed_server("drover-credentials-", PLAYBOOK, env_extra={"DROVER_EGRESS_TRUST": str(cert)}) as server:
        yield server


def ask(server, session_id, command):
    """One message to a new session (the scripted playbook runs once per session)."""
    client = server.client()
    client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": command}]}])
    return final_answer(client, session_id)


def test_the_secret_reaches_its_host_and_nothing_else(credential_server, tls_origin):
    port, _ = tls_origin
    client = credential_server.client()
    vault = client.beta.vaults.create(display_name="course api")
    credential = client.beta.vaults.credentials.create(
        vault.id, auth={"type": "environment_variable", "secret_name": "COURSE_TOKEN", "secret_value": CANARY,
                        "networking": {"type": "limited", "allowed_hosts": ["127.0.0.1"]}})
    agent = client.beta.agents.create(name="grader", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    environment = client.beta.environments.create(
        name="course", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["127.0.0.1", "localhost"]}})
    sessions = []

    def new_session(**extra):
        sessions.append(client.beta.sessions.create(agent=agent.id, environment_id=environment.id, **extra).id)
        return sessions[-1]

    # The sandbox sees a placeholder; the origin sees the secret, over HTTPS the sandbox trusts
    # through its own trust store.
    answer = ask(credential_server, new_session(vault_ids=[vault.id]),
                 f"echo token=$COURSE_TOKEN; curl -sS --noproxy '' --max-time 20 -H \"Authorization: Bearer $COURSE_TOKEN\" "
                 f"https://127.0.0.1:{port}/grades 2>&1")
    expected = hashlib.sha256(f"Bearer {CANARY}".encode()).hexdigest()
    assert f"authorization sha256={expected}" in answer, answer
    assert "token=drover_placeholder_" in answer and CANARY not in answer, answer
    assert ("/grades", f"Bearer {CANARY}") in Origin.seen

    # Another host (the same server under a name the credential does not list) gets the
    # placeholder as it was.
    answer = ask(credential_server, new_session(vault_ids=[vault.id]),
                 f"curl -sS -k --noproxy '' --max-time 20 -H \"Authorization: Bearer $COURSE_TOKEN\" https://localhost:{port}/elsewhere 2>&1")
    path, sent = Origin.seen[-1]
    assert path == "/elsewhere" and sent.startswith("Bearer drover_placeholder_") and CANARY not in sent, answer

    # A session without the vault has no such variable, and its placeholder guess gains nothing.
    answer = ask(credential_server, new_session(),
                 f"echo [$COURSE_TOKEN]; curl -sS --noproxy '' --max-time 20 -k -H \"Authorization: Bearer {sent.split()[1]}\" "
                 f"https://127.0.0.1:{port}/guess 2>&1")
    assert "[]" in answer, answer
    assert Origin.seen[-1] == ("/guess", sent), Origin.seen[-1]

    # Archived: a session's next call no longer gets the secret.
    client.beta.vaults.credentials.archive(credential.id, vault_id=vault.id)
    answer = ask(credential_server, new_session(vault_ids=[vault.id]),
                 f"curl -sS --noproxy '' --max-time 20 -k -H \"Authorization: Bearer $COURSE_TOKEN\" https://127.0.0.1:{port}/archived 2>&1")
    assert Origin.seen[-1][0] == "/archived" and CANARY not in Origin.seen[-1][1], answer

    # The canary: the secret is nowhere Drover writes: SQLite and its WAL, Redis' AOF, the
    # server's and the model's logs, the workspaces, the session's events.
    # A workspace's disk image is read through its mounted file system (`fs`), not as the
    # sparse image of its full quota.
    root = credential_server.data_dir.parent
    scanned = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_socket() and path.name != "disk.img":
            assert CANARY.encode() not in path.read_bytes(), f"the secret is in {path}"
            scanned += 1
    assert scanned > 10, f"only {scanned} files were scanned"
    for session_id in sessions:
        events = credential_server.raw("GET", f"/v1/sessions/{session_id}/events?limit=1000").text
        assert CANARY not in events
