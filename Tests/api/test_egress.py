"""Networking through the SDK, end to end: environments with each network type, and sessions whose
agent runs `curl` in a real bubblewrap sandbox against a real HTTP server on the host's loopback.
The scripted model runs the user's message as a bash command and quotes its output, so the
session's answer shows what the sandbox reached. Everything the sandbox reaches goes through the
worker's egress proxy; `--noproxy ''` keeps curl from treating the host's loopback as its own."""
import http.server
import json
import threading

import pytest
from anthropic.types.beta import BetaEnvironment

from conftest import BASH_PLAYBOOK, final_answer, sandboxed_server, validate

PLAYBOOK = BASH_PLAYBOOK


class Origin(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        Origin.seen.append(self.path)
        body = f"origin saw {self.path}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture(scope="module")
def egress_server():
    with sandboxed_server("drover-egress-", PLAYBOOK) as server:
        yield server


def run(server, agent, environment, command):
    client = server.client()
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": command}]}])
    run.last_session = session.id
    return final_answer(client, session.id)


def egress_of(server, session_id):
    """`drover sessions show`'s egress counts: what the session's sandbox asked of the proxy."""
    return json.loads(server.drover("sessions", "show", session_id))["egress"]


def curl(url):
    return f"curl -sS --noproxy '' --max-time 20 -w ' status=%{{http_code}}' {url} 2>&1"


def test_networking_types_reach_what_they_allow(egress_server, origin):
    client = egress_server.client()
    agent = client.beta.agents.create(name="fetcher", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    listed = client.beta.environments.create(
        name="loopback-listed", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["127.0.0.1"]}})
    validate(BetaEnvironment, egress_server.raw("GET", f"/v1/environments/{listed.id}").json())

    answer = run(egress_server, agent, listed, curl(f"http://127.0.0.1:{origin}/from-sandbox"))
    assert "origin saw /from-sandbox" in answer and "status=200" in answer, answer
    assert "/from-sandbox" in Origin.seen
    [counted] = egress_of(egress_server, run.last_session)
    assert counted["host"] == "127.0.0.1" and counted["port"] == origin and counted["verdict"] == "allowed", counted
    assert counted["requests"] == 1 and counted["bytes_received"] > 0, counted

    # Listing the host's loopback does not open Drover's own API on it.
    port = egress_server.base_url.rsplit(":", 1)[1]
    answer = run(egress_server, agent, listed, curl(f"http://127.0.0.1:{port}/health"))
    assert "status=403" in answer and "Drover's own endpoints" in answer, answer
    assert [(e["port"], e["verdict"]) for e in egress_of(egress_server, run.last_session)] == [(int(port), "refused: Drover endpoint")]

    # unrestricted is the public internet: the host's loopback is refused, with the fix.
    unrestricted = client.beta.environments.create(name="open", config={"type": "cloud", "networking": {"type": "unrestricted"}})
    assert unrestricted.config.networking.type == "unrestricted"
    answer = run(egress_server, agent, unrestricted, curl(f"http://127.0.0.1:{origin}/unrestricted"))
    assert "status=403" in answer and "loopback" in answer and "allowed_hosts" in answer, answer

    # limited with nothing listed: refused, naming the host and the field.
    closed = client.beta.environments.create(
        name="closed", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["example.org"]}})
    answer = run(egress_server, agent, closed, curl(f"http://127.0.0.1:{origin}/closed"))
    assert "status=403" in answer and "refused 127.0.0.1" in answer and "config.networking.allowed_hosts" in answer, answer

    # Drover's default: no network at all, not even a proxy to ask.
    plain = client.beta.environments.create(name="plain")
    answer = run(egress_server, agent, plain, curl(f"http://127.0.0.1:{origin}/plain") + "; echo; echo proxies=$(env | grep -ci _proxy)")
    assert "status=000" in answer and "proxies=0" in answer, answer
    assert not {"/unrestricted", "/closed", "/plain"} & set(Origin.seen)
