"""Self-hosted environments, driven by the anthropic SDK's own EnvironmentWorker.

The worker runs in a subprocess with a temporary workdir, unchanged from the SDK: it polls the
environment's work queue with the environment key, heartbeats its lease, runs the agent toolset
on this machine and answers each `agent.tool_use` with `user.tool_result`. Drover's brain holds
no worker while the calls are out, and answers a dead worker's calls with errors, once.
"""

import os
import contextlib
import json
import time
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx2 as httpx
import pytest
import anthropic
from anthropic import Anthropic

from conftest import BETA, sandboxed_server, wait_until

# Files when the message names one; a bash call always; the results back in the final message.
SCRIPT = """
playbook:
  steps:
    - tool: write
      when: "{{named_file}}"
      input: {file_path: "{{named_file}}", content: "first line\\n{{user_text}}\\nlast line\\n"}
    - tool: bash
      input: {command: "{{user_text}}"}
    - tool: grep
      when: "{{named_file}}"
      input: {pattern: "wc -l", path: "."}
  final: "DONE<{{results}}>"
"""

WORKER = Path(__file__).with_name("selfhosted_worker.py")
LEASE_SECONDS = 4


@pytest.fixture(scope="module")
def server():
    with sandboxed_server("drover-selfhosted-", SCRIPT, "--work-lease-seconds", str(LEASE_SECONDS), hands="in-process") as server:
        yield server


def headers(key: str) -> dict:
    return {"x-api-key": key, "anthropic-beta": BETA, "content-type": "application/json"}


def self_hosted(server, workspace="alpha"):
    """A self-hosted environment, an agent with the toolset, and a key for the environment's workers."""
    client = Anthropic(base_url=server.base_url, api_key=server.keys[workspace])
    environment = client.beta.environments.create(name="laptops", config={"type": "self_hosted"})
    assert environment.config.type == "self_hosted"
    agent = client.beta.agents.create(name="hands-elsewhere", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    response = httpx.post(f"{server.base_url}/v1/environments/{environment.id}/keys", headers=headers(server.keys[workspace]), timeout=30)
    assert response.status_code == 200, response.text
    key = response.json()["key"]
    assert key.startswith("drv-env-")
    return client, environment, agent, key


class Worker:
    """The SDK's EnvironmentWorker in its own process group (its bash tool is a child of it)."""

    def __init__(self, server, environment_id: str, key: str, workdir: Path, log: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = log
        env = dict(os.environ, DROVER_TEST_ENVIRONMENT_KEY=key)
        env.pop("ANTHROPIC_API_KEY", None)
        self.process = subprocess.Popen([sys.executable, str(WORKER), server.base_url, environment_id, str(workdir)],
                                        stdout=log.open("a"), stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        if self.process.poll() is None:
            self.kill()
        print(self.log.read_text())


@contextlib.contextmanager
def worker_for(server, environment_id: str, key: str, name: str = "worker"):
    """The SDK's worker for the environment, in a fresh workdir; yields the workdir and the worker."""
    with tempfile.TemporaryDirectory(prefix="drover-worker-") as tmp:
        workdir = Path(tmp) / "work"
        worker = Worker(server, environment_id, key, workdir, Path(tmp) / f"{name}.log")
        try:
            yield workdir, worker
        finally:
            worker.stop()


def say(client, session_id: str, text: str):
    client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}])


def wait_idle(client, session_id: str, seconds: float = 120):
    """The session's events once it is idle with end_turn, waiting on its status, not on time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        session = client.beta.sessions.retrieve(session_id)
        if session.status == "idle":
            events = list(client.beta.sessions.events.list(session_id, limit=1000))
            idles = [e for e in events if e.type == "session.status_idle"]
            if idles and idles[-1].stop_reason.type == "end_turn":
                return events
        if session.status == "terminated":
            pytest.fail("the session terminated")
        time.sleep(0.2)
    pytest.fail(f"session {session_id} did not go idle in {seconds}s: {[e.type for e in client.beta.sessions.events.list(session_id, limit=1000)]}")



def text_of(event) -> str:
    return "".join(block.text for block in (event.content or []) if block.type == "text")


def test_the_sdk_worker_runs_the_tools_in_its_own_directory(server):
    client, environment, agent, key = self_hosted(server)
    with worker_for(server, environment.id, key) as (workdir, worker):
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        say(client, session.id, "cat notes.txt; wc -l < notes.txt")
        events = wait_idle(client, session.id)
        # The file is in the worker's directory: Drover has no sandbox for this session.
        assert (workdir / "notes.txt").read_text() == "first line\ncat notes.txt; wc -l < notes.txt\nlast line\n"
        assert not (server.data_dir.parent / "hands" / "workspaces" / session.id).exists()
        uses = [e for e in events if e.type == "agent.tool_use"]
        results = [e for e in events if e.type == "user.tool_result"]
        assert [u.name for u in uses] == ["write", "bash", "grep"]
        assert sorted(r.tool_use_id for r in results) == sorted(u.id for u in uses)
        assert not [e for e in events if e.type == "agent.tool_result"], "a toolset call ran in Drover"
        by_use = {r.tool_use_id: r for r in results}
        bash = by_use[uses[1].id]
        assert not bash.is_error and text_of(bash).split() == ["first", "line", "cat", "notes.txt;", "wc", "-l", "<", "notes.txt", "last", "line", "3"]
        assert "notes.txt" in text_of(by_use[uses[2].id])
        final = [e for e in events if e.type == "agent.message"][-1]
        assert "DONE<" in text_of(final) and "last line" in text_of(final)
        # The worker lets go once the session stays idle; its item ends stopped, by the worker.
        work = wait_until(lambda: [w for w in client.beta.environments.work.list(environment.id).data if w.state == "stopped"],
                          "the worker to stop its item")
        assert work[0].data.id == session.id and work[0].acknowledged_at and work[0].latest_heartbeat_at


def test_a_killed_worker_s_call_gets_one_error_and_a_second_worker_goes_on(server):
    client, environment, agent, key = self_hosted(server)
    with tempfile.TemporaryDirectory(prefix="drover-worker-") as tmp:
        workdir = Path(tmp) / "work"
        first = Worker(server, environment.id, key, workdir, Path(tmp) / "first.log")
        second = None
        try:
            session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
            say(client, session.id, "touch started && sleep 120")
            wait_until(lambda: (workdir / "started").exists(), "the worker to start the call")
            first.kill()
            # The lease lapses; the call gets its error result and the turn goes on without it.
            events = wait_idle(client, session.id, seconds=120)
            use = [e for e in events if e.type == "agent.tool_use"][0]
            results = [e for e in events if e.type in ("user.tool_result", "agent.tool_result") and e.tool_use_id == use.id]
            assert len(results) == 1 and results[0].type == "user.tool_result" and results[0].is_error
            assert "stopped renewing its lease" in text_of(results[0])
            # A second worker takes the session's next work.
            second = Worker(server, environment.id, key, workdir, Path(tmp) / "second.log")
            say(client, session.id, "echo second-worker")

            def answered_twice():
                events = list(client.beta.sessions.events.list(session.id, limit=1000))
                uses = [e for e in events if e.type == "agent.tool_use"]
                done = [e for e in events if e.type == "session.status_idle"]
                return events if len(uses) == 2 and len(done) >= 2 and done[-1].processed_at > uses[-1].processed_at else None

            events = wait_until(answered_twice, "the second worker's answer", seconds=120)
            uses = [e for e in events if e.type == "agent.tool_use"]
            results = [e for e in events if e.type == "user.tool_result"]
            assert sorted(r.tool_use_id for r in results) == sorted(u.id for u in uses), "each call has exactly one result"
            assert text_of([r for r in results if r.tool_use_id == uses[1].id][0]).strip() == "second-worker"
            # The dead worker's command did not run again: it left one marker and its sleep was not redone.
            assert (workdir / "started").exists()
        finally:
            first.stop()
            if second:
                second.stop()


def test_an_interrupt_reaches_the_worker_through_its_lease(server):
    client, environment, agent, key = self_hosted(server)
    with worker_for(server, environment.id, key) as (workdir, worker):
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        say(client, session.id, "touch started && sleep 120")
        wait_until(lambda: (workdir / "started").exists(), "the worker to start the call")
        client.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
        events = wait_idle(client, session.id)
        use = [e for e in events if e.type == "agent.tool_use"][0]
        results = [e for e in events if e.type == "user.tool_result" and e.tool_use_id == use.id]
        assert len(results) == 1 and "user.interrupt" in text_of(results[0])
        # The worker reads `stopping` at its next heartbeat, and stops the item.
        work = wait_until(lambda: [w for w in client.beta.environments.work.list(environment.id).data if w.data.id == session.id
                                   and w.state == "stopped"], "the worker to stop on the interrupt")
        assert work[0].stop_requested_at


def test_the_work_endpoints_in_the_sdk_s_shapes(server):
    client, environment, agent, key = self_hosted(server)
    worker = Anthropic(base_url=server.base_url, api_key="unused", default_headers={"authorization": f"Bearer {key}"})
    worker = worker.with_options(api_key=key)
    work = worker.beta.environments.work
    assert work.poll(environment.id, block_ms=50) is None
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    say(client, session.id, "echo hi")
    item = wait_until(lambda: work.poll(environment.id, block_ms=500, anthropic_worker_id="test-worker"), "a work item")
    assert item.type == "work" and item.data.type == "session" and item.data.id == session.id and item.state == "starting"
    stats = work.stats(environment.id)
    assert stats.type == "work_queue_stats" and stats.pending == 1 and stats.workers_polling == 1
    acked = work.ack(item.id, environment_id=environment.id)
    assert acked.state == "active" and acked.acknowledged_at
    beat = work.heartbeat(item.id, environment_id=environment.id, expected_last_heartbeat="NO_HEARTBEAT", desired_ttl_seconds=30)
    assert beat.type == "work_heartbeat" and beat.lease_extended and beat.state == "active" and beat.ttl_seconds == 30
    # A stale heartbeat: another worker may hold the lease, and the SDK's typed error says so.
    with pytest.raises(anthropic.PreconditionFailedError) as refused:
        work.heartbeat(item.id, environment_id=environment.id, expected_last_heartbeat="NO_HEARTBEAT")
    error = refused.value.body["error"]
    assert error["error_code"] == "heartbeat_precondition_failed"
    assert error["details"]["current_state"]["last_heartbeat"] == beat.last_heartbeat
    assert error["details"]["current_state"]["state"] == "active" and error["details"]["current_state"]["lease_extended"] is False
    updated = work.update(item.id, environment_id=environment.id, metadata={"host": "lab-3", "gone": None})
    assert updated.metadata == {"host": "lab-3"}
    assert work.retrieve(item.id, environment_id=environment.id).metadata == {"host": "lab-3"}
    # A graceful stop asks the worker to finish; a forced one ends it; a second answers 409.
    assert work.stop(item.id, environment_id=environment.id).state == "stopping"
    beat = work.heartbeat(item.id, environment_id=environment.id, expected_last_heartbeat="anything")
    assert beat.state == "stopping" and not beat.lease_extended
    assert work.stop(item.id, environment_id=environment.id, force=True).state == "stopped"
    with pytest.raises(anthropic.ConflictError):
        worker.with_options(max_retries=0).beta.environments.work.stop(item.id, environment_id=environment.id, force=True)
    assert [w.id for w in work.list(environment.id).data] == [item.id]


def test_an_environment_key_grants_its_environment_and_nothing_else(server):
    client, environment, agent, key = self_hosted(server)
    other_client, other_environment, other_agent, _ = self_hosted(server)
    theirs = other_client.beta.sessions.create(agent=other_agent.id, environment_id=other_environment.id)
    mine = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    as_worker = headers(key)
    # Its own work and sessions: yes.
    assert httpx.get(f"{server.base_url}/v1/environments/{environment.id}/work/stats", headers=as_worker, timeout=30).status_code == 200
    assert httpx.get(f"{server.base_url}/v1/sessions/{mine.id}", headers=as_worker, timeout=30).status_code == 200
    # Another environment's work and sessions, the rest of the API, or a message: no.
    assert httpx.get(f"{server.base_url}/v1/environments/{other_environment.id}/work/stats", headers=as_worker, timeout=30).status_code == 403
    assert httpx.get(f"{server.base_url}/v1/sessions/{theirs.id}", headers=as_worker, timeout=30).status_code == 404
    assert httpx.get(f"{server.base_url}/v1/sessions/{theirs.id}/events", headers=as_worker, timeout=30).status_code == 404
    for method, path in [("GET", "/v1/agents"), ("GET", "/v1/sessions"), ("GET", f"/v1/environments/{environment.id}"),
                         ("POST", f"/v1/environments/{environment.id}/keys"), ("GET", "/v1/vaults"), ("POST", "/v1/sessions")]:
        response = httpx.request(method, f"{server.base_url}{path}", headers=as_worker, json={}, timeout=30)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["type"] == "permission_error"
    message = {"events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]}
    response = httpx.post(f"{server.base_url}/v1/sessions/{mine.id}/events", headers=as_worker, json=message, timeout=30)
    assert response.status_code == 403 and "user.tool_result" in response.json()["error"]["message"]
    # A user.tool_result for no call of the session is refused, naming the field.
    bogus = {"events": [{"type": "user.tool_result", "tool_use_id": "sevt_nothing", "content": [{"type": "text", "text": "x"}]}]}
    response = httpx.post(f"{server.base_url}/v1/sessions/{mine.id}/events", headers=as_worker, json=bogus, timeout=30)
    assert response.status_code == 422 and "tool_use_id" in response.json()["error"]["message"]
    # Revoked: nothing at all. The key is stored hashed: the database holds no copy of it.
    listed = httpx.get(f"{server.base_url}/v1/environments/{environment.id}/keys", headers=headers(server.keys["alpha"]), timeout=30).json()
    assert [k["environment_id"] for k in listed["data"]] == [environment.id] and "key" not in listed["data"][0]
    assert key.encode() not in (server.data_dir / "drover.db").read_bytes()
    revoke = httpx.delete(f"{server.base_url}/v1/environments/{environment.id}/keys/{listed['data'][0]['id']}",
                          headers=headers(server.keys["alpha"]), timeout=30)
    assert revoke.status_code == 200
    assert httpx.get(f"{server.base_url}/v1/sessions/{mine.id}", headers=as_worker, timeout=30).status_code == 401
    # Another workspace's API key cannot reach this environment's work.
    response = httpx.get(f"{server.base_url}/v1/environments/{environment.id}/work/poll", headers=headers(server.keys["beta"]), timeout=30)
    assert response.status_code == 404


def test_self_hosted_sessions_refuse_what_needs_drover_s_sandboxes(server):
    client, environment, agent, _ = self_hosted(server)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.sessions.create(agent=agent.id, environment_id=environment.id,
                                    resources=[{"type": "file", "file_id": "file_nothing", "mount_path": "/workspace/x"}])
    assert "resources" in refused.value.message and "self_hosted" in refused.value.message
    cloud = client.beta.environments.create(name="cloud", config={"type": "cloud"})
    session = client.beta.sessions.create(agent=agent.id, environment_id=cloud.id)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.sessions.events.send(session.id, events=[{"type": "user.tool_result", "tool_use_id": "sevt_x", "content": []}])
    assert "self_hosted" in refused.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.work.poll(cloud.id)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.environments.create(name="bad", config={"type": "self_hosted", "packages": {"pip": ["x"]}})
    assert "config.packages" in refused.value.message


def test_always_ask_holds_the_call_until_the_user_confirms_then_the_worker_runs_it(server):
    client, environment, _, key = self_hosted(server)
    asking = client.beta.agents.create(name="asks", model="claude-sonnet-4-5", tools=[
        {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}])
    with worker_for(server, environment.id, key) as (workdir, worker):
        for verdict in ("allow", "deny"):
            session = client.beta.sessions.create(agent=asking.id, environment_id=environment.id)
            client.beta.sessions.events.send(session.id, events=[
                {"type": "user.message", "content": [{"type": "text", "text": f"touch {verdict}-ran"}]}])
            idle = wait_until(lambda: [e for e in client.beta.sessions.events.list(session.id, limit=1000)
                                       if e.type == "session.status_idle"], "the call to wait for a confirmation")
            assert idle[-1].stop_reason.type == "requires_action"
            use = [e for e in client.beta.sessions.events.list(session.id, limit=1000) if e.type == "agent.tool_use"][0]
            assert use.evaluated_permission == "ask" and idle[-1].stop_reason.event_ids == [use.id]
            # The worker holds the call: nothing runs before the verdict.
            time.sleep(1)
            assert not (workdir / f"{verdict}-ran").exists()
            client.beta.sessions.events.send(session.id, events=[
                {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": verdict}])
            events = wait_idle(client, session.id)
            results = [e for e in events if e.type == "user.tool_result" and e.tool_use_id == use.id]
            assert len(results) == 1
            if verdict == "allow":
                assert not results[0].is_error and (workdir / "allow-ran").exists()
            else:
                assert results[0].is_error and "denied" in text_of(results[0]) and not (workdir / "deny-ran").exists()


def test_archiving_a_session_stops_its_work_item(server):
    client, environment, agent, _ = self_hosted(server)
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    say(client, session.id, "echo hi")
    item = wait_until(lambda: [w for w in client.beta.environments.work.list(environment.id).data if w.data.id == session.id],
                      "the session's work item")[0]
    assert item.state == "queued"
    client.beta.sessions.archive(session.id)
    assert client.beta.environments.work.retrieve(item.id, environment_id=environment.id).state == "stopped"


def test_a_deployment_s_run_in_a_self_hosted_environment_uses_its_worker(server):
    client, environment, agent, key = self_hosted(server)
    deployment = client.beta.deployments.create(
        name="on-my-machine", agent=agent.id, environment_id=environment.id,
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "echo from-a-deployment > ran.txt"}]}])
    with worker_for(server, environment.id, key) as (workdir, _):
        run = client.beta.deployments.run(deployment.id)
        assert run.session_id
        wait_idle(client, run.session_id)
        assert (workdir / "ran.txt").read_text() == "from-a-deployment\n"
