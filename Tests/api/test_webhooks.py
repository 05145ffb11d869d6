"""Webhooks: a real receiver on loopback, deliveries from a real `drover serve`, verified by the
SDK's own `client.beta.webhooks.unwrap`. Deliveries are retried with backoff, keep their
`webhook-id` and bytes across attempts, end in the dead letters when their attempts run out,
and survive `kill -9` of the delivering process mid-request."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anthropic
import httpx2 as httpx
import pytest

from conftest import BASH_PLAYBOOK, DROVER, free_port, sandboxed_server, terminate, wait_for, wait_until
from test_redis_outage import start_redis

standardwebhooks = pytest.importorskip("standardwebhooks")

# Fast retries, so that a test sees several; three tries before the dead letters.
FAST = ("--webhook-retry-seconds", "0.3", "--webhook-attempts", "3", "--webhook-timeout-seconds", "2")


class Receiver:
    """An HTTP endpoint on loopback that answers each delivery as `plan(attempt)` says (a status,
    or "hang": hold the request until released), and keeps what it was sent."""

    def __init__(self, plan):
        self.plan = plan
        self.requests = []  # (headers, body, answer), in arrival order
        self.lock = threading.Lock()
        self.hanging = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    attempt = 1 + sum(1 for h, _, _ in receiver.requests if h.get("webhook-id") == headers.get("webhook-id"))
                    answer = receiver.plan(attempt)
                    receiver.requests.append((headers, body, answer))
                if answer == "hang":
                    receiver.hanging.set()
                    receiver.release.wait(120)
                    answer = 200
                self.send_response(answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drover"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def attempts(self, predicate=lambda event: True):
        """Deliveries by webhook-id, for events `predicate` accepts."""
        with self.lock:
            found = {}
            for headers, body, answer in self.requests:
                if predicate(json.loads(body)):
                    found.setdefault(headers["webhook-id"], []).append((headers, body, answer))
            return found

    def close(self):
        self.release.set()
        self.server.shutdown()



def of(type_: str, object_id: str | None = None):
    return lambda event: event["data"]["type"] == type_ and (object_id is None or event["data"]["id"] == object_id)


@pytest.fixture(scope="module")
def hooked():
    with sandboxed_server("drover-webhooks-", BASH_PLAYBOOK, *FAST) as server:
        yield server


def add_endpoint(server, url: str, events: str, workspace: str = "alpha") -> str:
    return server.drover("webhooks", "add", url, "--events", events, "--workspace", workspace).strip()


def test_signed_deliveries_are_retried_until_taken_and_verified_by_the_sdk(hooked):
    receiver = Receiver(lambda attempt: 500 if attempt <= 2 else 200)
    try:
        secret = add_endpoint(hooked, receiver.url, "session.status_idled,session.status_run_started,agent.created")
        assert secret.startswith("whsec_")
        client = hooked.client("alpha")
        agent = client.beta.agents.create(name="hooked", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
        environment = client.beta.environments.create(name="hooked-env")
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "echo hooked"}]}])

        for type_, object_id in (("session.status_idled", session.id), ("agent.created", agent.id),
                                 ("session.status_run_started", session.id)):
            deliveries = wait_until(lambda: [a for a in receiver.attempts(of(type_, object_id)).values() if a[-1][2] == 200],
                                    f"{type_} to be taken")
            assert len(deliveries) == 1, deliveries
            attempts = deliveries[0]
            # 500, 500, then 200: three attempts of one delivery, same id, same bytes.
            assert [answer for _, _, answer in attempts] == [500, 500, 200]
            assert len({h["webhook-id"] for h, _, _ in attempts}) == 1 and len({body for _, body, _ in attempts}) == 1
            headers, body, _ = attempts[-1]
            event = client.beta.webhooks.unwrap(body, headers=headers, key=secret)
            assert event.type == "event" and event.id == headers["webhook-id"]
            assert event.data.type == type_ and event.data.id == object_id and event.data.workspace_id == "wrkspc_alpha"
            # A tampered body, or another key, is refused.
            tampered = body.replace(object_id, object_id[:-1] + ("A" if object_id[-1] != "A" else "B"))
            with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
                client.beta.webhooks.unwrap(tampered, headers=headers, key=secret)
            other = hooked.drover("webhooks", "add", "http://127.0.0.1:9/unused", "--events", "agent.deleted").strip()
            with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
                client.beta.webhooks.unwrap(body, headers=headers, key=other)

        # Taken once, it is not sent again.
        taken = {k: len(v) for k, v in receiver.attempts().items()}
        time.sleep(2)
        assert {k: len(v) for k, v in receiver.attempts().items() if k in taken} == taken

        # Another workspace's sessions are not this endpoint's business.
        beta = hooked.client("beta")
        theirs = beta.beta.sessions.create(agent=beta.beta.agents.create(name="b", model="claude-sonnet-4-5").id,
                                           environment_id=beta.beta.environments.create(name="b").id)
        beta.beta.sessions.events.send(theirs.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "echo theirs"}]}])
        wait_until(lambda: beta.beta.sessions.retrieve(theirs.id).status == "idle", "beta's session to go idle")
        time.sleep(2)
        assert not receiver.attempts(lambda event: event["data"]["id"] == theirs.id)
    finally:
        receiver.close()


def test_a_session_waiting_on_a_confirmation_sends_requires_action(hooked):
    receiver = Receiver(lambda attempt: 200)
    try:
        secret = add_endpoint(hooked, receiver.url, "session.requires_action")
        client = hooked.client("alpha")
        environment = client.beta.environments.create(name="asks")
        sessions = {}
        for policy in ("always_ask", "always_allow"):
            agent = client.beta.agents.create(name=f"asks-{policy}", model="claude-sonnet-4-5", tools=[
                {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": policy}}}])
            session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
            client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "echo ask"}]}])
            sessions[policy] = session.id
        attempts = wait_until(lambda: list(receiver.attempts(of("session.requires_action", sessions["always_ask"])).values()),
                              "session.requires_action")
        headers, body, _ = attempts[0][-1]
        assert client.beta.webhooks.unwrap(body, headers=headers, key=secret).data.id == sessions["always_ask"]
        retrieved = client.beta.sessions.retrieve(sessions["always_ask"])
        assert retrieved.status == "idle"
        # The session that needed nothing from anyone ended its turn, and sent none.
        wait_until(lambda: client.beta.sessions.retrieve(sessions["always_allow"]).status == "idle"
                   and any(e.type == "session.status_idle" for e in client.beta.sessions.events.list(sessions["always_allow"], limit=100)),
                   "the other session to end its turn")
        time.sleep(1)
        assert not receiver.attempts(of("session.requires_action", sessions["always_allow"]))
    finally:
        receiver.close()


def test_deliveries_that_run_out_of_attempts_are_dead_letters_shown_and_retried(hooked):
    closed = free_port()  # nothing listens here
    endpoint_url = f"http://127.0.0.1:{closed}/gone"
    add_endpoint(hooked, endpoint_url, "environment.created", workspace="beta")
    environment = hooked.client("beta").beta.environments.create(name="nobody-listens")

    def dead():
        listed = json.loads(hooked.drover("webhooks", "dead", "--json"))
        return [d for d in listed if d["type"] == "environment.created"]

    letters = wait_until(dead, "the delivery to run out of its 3 attempts")
    assert letters[0]["attempts"] == 3 and str(closed) in letters[0]["error"], letters
    # The console's Webhooks page shows the workspace's endpoints and dead letters, to it alone.
    page = httpx.get(hooked.base_url + "/console/webhooks", cookies={"drover_console": hooked.keys["beta"]}, timeout=30).text
    assert endpoint_url in page and letters[0]["task_id"] in page and "environment.created" in page
    other = httpx.get(hooked.base_url + "/console/webhooks", cookies={"drover_console": hooked.keys["alpha"]}, timeout=30).text
    assert letters[0]["task_id"] not in other and endpoint_url not in other
    # Sent again with its attempts reset: it fails again, and comes back with the same event id.
    out = hooked.drover("webhooks", "retry", letters[0]["task_id"])
    assert "queued again" in out
    again = wait_until(lambda: [d for d in dead() if d["task_id"] == letters[0]["task_id"]], "the retried delivery to die again")
    assert again[0]["event_id"] == letters[0]["event_id"]
    assert environment.id


def test_bad_endpoints_are_refused_naming_the_fix(hooked):
    for args, needle in ((["ftp://example.com/x", "--events", "agent.created"], "http(s) URL"),
                         (["https://user:pw@example.com/x", "--events", "agent.created"], "no credentials"),
                         (["https://example.com/x", "--events", "session.nonsense"], "not an event Drover sends"),
                         (["https://example.com/x", "--events", ""], "no event named")):
        run = subprocess.run([str(DROVER), "webhooks", "add", *args], env=dict(os.environ, DROVER_DATA_DIR=str(hooked.data_dir)),
                             capture_output=True, text=True, timeout=30)
        assert run.returncode != 0 and needle in run.stderr, (args, run.stderr)


def test_a_delivery_survives_kill_9_of_its_deliverer_mid_request():
    """The receiver answers 500, then holds the second attempt open while `drover serve` is killed
    with SIGKILL. A new serve on the same Redis sends it again once the dead one's lease runs out:
    same webhook-id, same bytes, and taken once."""
    receiver = Receiver(lambda attempt: {1: 500, 2: "hang"}.get(attempt, 200))
    with tempfile.TemporaryDirectory(prefix="drover-webhooks-kill-") as tmp:
        tmp = Path(tmp)
        redis = start_redis(tmp)
        env = dict(os.environ, DROVER_DATA_DIR=str(tmp / "data"), DROVER_REDIS_URL=f"unix://{tmp / 'redis.sock'}")
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
            env.pop(name, None)
        serves = []

        def start() -> str:
            port, log = free_port(), tmp / f"serve-{len(serves)}.log"
            serve = subprocess.Popen([str(DROVER), "serve", "--address", f"127.0.0.1:{port}", "--no-scheduler", "--hands", "in-process", *FAST],
                                     stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
            serves.append(serve)
            wait_for(f"http://127.0.0.1:{port}/health", serve, log)
            return f"http://127.0.0.1:{port}"

        try:
            secret = subprocess.run([str(DROVER), "webhooks", "add", receiver.url, "--events", "agent.created"], env=env, check=True,
                                    capture_output=True, text=True, timeout=30).stdout.strip()
            base = start()
            agent = anthropic.Anthropic(base_url=base, api_key="local", max_retries=0).beta.agents.create(
                name="survivor", model="claude-sonnet-4-5")
            wait_until(receiver.hanging.is_set, "the second attempt to arrive")
            serves[0].send_signal(signal.SIGKILL)
            serves[0].wait(timeout=30)
            receiver.release.set()  # the dead deliverer's request ends; its lease is still held
            start()
            attempts = wait_until(lambda: [a for a in receiver.attempts(of("agent.created", agent.id)).values() if a[-1][2] == 200 and len(a) >= 3],
                                  "the delivery to be sent again and taken")[0]
            assert [answer for _, _, answer in attempts][:2] == [500, "hang"] and attempts[-1][2] == 200
            assert len({h["webhook-id"] for h, _, _ in attempts}) == 1 and len({body for _, body, _ in attempts}) == 1
            headers, body, _ = attempts[-1]
            client = anthropic.Anthropic(base_url=base, api_key="local", max_retries=0)
            assert client.beta.webhooks.unwrap(body, headers=headers, key=secret).data.id == agent.id
            count = len(attempts)
            time.sleep(2)
            assert len(receiver.attempts(of("agent.created", agent.id))[headers["webhook-id"]]) == count
        finally:
            receiver.close()
            terminate(*serves)
            redis.kill()
            redis.wait(timeout=30)
