"""What an operator sees from outside: `/metrics` scraped by Prometheus' own parser while real
sessions run (the counters move), the `request-id` every answer carries, and one JSON log line per
request that names it."""

import json
import os
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BASH_PLAYBOOK, DROVER, free_port, sandboxed_server


def scrape(server, workspace="alpha") -> dict:
    """Every sample of the server's /metrics, parsed by prometheus_client: (name, labels) -> value."""
    response = httpx.get(server.base_url + "/metrics", headers={"x-api-key": server.keys[workspace]}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """The sum of `name` over the series whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= set(series))


def run_sessions(server, count: int) -> list:
    client = server.client()
    agent = client.beta.agents.create(name="metrics", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    environment = client.beta.environments.create(name="metrics")
    sessions = []
    for index in range(count):
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": f"echo item-{index}"}]}])
        sessions.append(session)
    # Read once each is idle: a stream opened after the end would wait for events that never come.
    deadline = time.monotonic() + 120
    for index, session in enumerate(sessions):
        while client.beta.sessions.retrieve(session.id).status != "idle":
            assert time.monotonic() < deadline, f"session {index} did not finish"
            time.sleep(0.1)
        messages = [e for e in client.beta.sessions.events.list(session.id).data if e.type == "agent.message"]
        assert messages[-1].content[0].text.endswith(f"OUT<item-{index}\n>"), messages
    return sessions


def test_metrics_move_as_sessions_run_and_every_request_is_logged_once_with_its_id():
    with sandboxed_server("drover-metrics-", BASH_PLAYBOOK, "--log-format", "json") as server:
        # With keys configured, a scrape needs one: the figures span every workspace.
        assert httpx.get(server.base_url + "/metrics", timeout=30).status_code == 401
        before = scrape(server)
        run_sessions(server, 3)

        # The recorder mirrors, and the worker acks a turn's task, after the session goes idle:
        # wait until both have happened, however slow the machine.
        deadline = time.monotonic() + 120
        acks_before = value(before, "drover_queue_acks_total", queue="turns")
        while True:
            after = scrape(server)
            if (value(after, "drover_recorder_backlog_events") == 0 and value(after, "drover_recorder_events_total") > 0
                    and value(after, "drover_queue_acks_total", queue="turns") - acks_before >= 3):
                break
            assert time.monotonic() < deadline, "the recorder did not catch up, or the turns were not acked"
            time.sleep(0.2)

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        # Queue: each session's turn claimed and acked on the turn queue, none lost or failed.
        assert moved("drover_queue_claims_total", queue="turns") >= 3
        assert moved("drover_queue_acks_total", queue="turns") >= 3
        assert moved("drover_queue_fails_total") == 0 and moved("drover_queue_leases_lost_total") == 0
        assert ("drover_queue_tasks", (("queue", "turns"), ("state", "ready"))) in after
        # Turns and the model: two model requests per session (the bash call, then the answer).
        assert moved("drover_turns_total", outcome="end_turn") >= 3
        assert moved("drover_turn_duration_seconds_count") >= 3
        assert moved("drover_model_request_duration_seconds_count") >= 6
        assert moved("drover_model_time_to_first_token_seconds_count") >= 6
        assert moved("drover_model_tokens_total", model="claude-sonnet-4-5", kind="input") > 0
        assert moved("drover_session_active_seconds_total") > 0
        # Tools and the sandboxes they ran in.
        assert moved("drover_tool_call_duration_seconds_count", tool="bash") == 3
        assert moved("drover_tool_call_errors_total", tool="bash") == 0
        assert moved("drover_sandbox_provision_seconds_count") >= 1
        assert value(after, "drover_sandboxes", state="in_use") >= 3
        # The API: the sessions created, by route and status.
        assert moved("hb_requests_total", http_route="/v1/sessions", http_request_method="POST", http_response_status_code="200") == 3

        # Every answer carries its request id; an error's body names the same one.
        response = server.raw("GET", "/v1/sessions/sesn_nosuch")
        assert response.status_code == 404
        request_id = response.headers["request-id"]
        assert request_id.startswith("req_") and response.json()["request_id"] == request_id
        listing = server.client().beta.agents.list()
        assert listing._request_id and listing._request_id.startswith("req_")

        log = server.data_dir.parent / "serve.log"
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        requests = [line for line in lines if line.get("message") == "request"]
        (missing,) = [line for line in requests if line["request_id"] == request_id]
        assert missing["route"] == "/v1/sessions/{session_id}" and missing["status"] == 404 and missing["method"] == "GET"
        assert missing["workspace"] and isinstance(missing["duration_ms"], (int, float)), missing
        assert {"time", "level", "logger"} <= set(missing)
        # One line per request: every request id appears once.
        ids = [line["request_id"] for line in requests]
        assert len(ids) == len(set(ids))


def test_a_role_without_an_api_serves_metrics_on_its_own_address():
    with sandboxed_server("drover-metrics-role-", BASH_PLAYBOOK) as server:
        port = free_port()
        env = server.env()
        log = server.data_dir.parent / "scheduler.log"
        # The server runs no scheduler (--no-scheduler): this one leads.
        scheduler = subprocess.Popen([str(DROVER), "scheduler", "--metrics-address", f"127.0.0.1:{port}"], env=env,
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert scheduler.poll() is None, log.read_text()
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
                    if samples.get("drover_scheduler_leader") == 1:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"the scheduler never reported leading:\n{log.read_text()}"
                time.sleep(0.2)
        finally:
            scheduler.terminate()
            scheduler.wait(timeout=30)


@pytest.mark.parametrize("args, field", [
    (["serve", "--log-format", "xml"], "--log-format"),
    (["serve", "--log-level", "loud"], "--log-level"),
    (["serve", "--metrics-address", "127.0.0.1:9100"], "--metrics-address"),
    (["worker", "--no-metrics", "--metrics-address", "127.0.0.1:9100"], "--metrics-address"),
])
def test_bad_logging_and_metrics_options_are_refused_before_anything_starts(tmp_path: Path, args, field):
    env = dict(os.environ, DROVER_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([str(DROVER), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert field in result.stderr and "Fix:" in result.stderr, result.stderr
    # Refused before the runtime started: no embedded Redis, no database.
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir()), list((tmp_path / "data").iterdir())
