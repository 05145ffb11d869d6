"""`drover report usage` counts cost: tokens at each agent model's rate plus running time at the
runtime rate, and counts right before any recorder has run, from the events still in Redis."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import anthropic
import pytest

from conftest import DROVER, free_port, terminate, wait_for
from test_redis_outage import start_redis
from test_webhooks import wait_until

SONNET = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}


def report(env, *args) -> dict:
    run = subprocess.run([str(DROVER), "report", "usage", "--json", "--by", "session", *args], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def expected_tokens(client, session_id: str) -> dict:
    """What the session's model requests used, as the SDK lists them."""
    totals = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    for event in client.beta.sessions.events.list(session_id, limit=1000):
        if event.type == "span.model_request_end":
            for key in totals:
                totals[key] += getattr(event.model_usage, key) or 0
    return totals


@pytest.fixture(scope="module")
def unrecorded():
    """`drover api` and `drover worker` on one Redis, and no recorder: the events stay in Redis."""
    with tempfile.TemporaryDirectory(prefix="drover-usage-") as tmp:
        tmp = Path(tmp)
        redis = start_redis(tmp)
        env = dict(os.environ, DROVER_DATA_DIR=str(tmp / "data"), DROVER_REDIS_URL=f"unix://{tmp / 'redis.sock'}")
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
            env.pop(name, None)
        port = free_port()
        api_log, worker_log = tmp / "api.log", tmp / "worker.log"
        api = subprocess.Popen([str(DROVER), "api", "--address", f"127.0.0.1:{port}"], stdout=api_log.open("w"), stderr=subprocess.STDOUT,
                               env=env)
        worker = subprocess.Popen([str(DROVER), "worker", "--hands", "in-process"], stdout=worker_log.open("w"), stderr=subprocess.STDOUT,
                                  env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/health", api, api_log)
            yield anthropic.Anthropic(base_url=base, api_key="local", max_retries=0), env, tmp
        finally:
            terminate(api, worker)
            redis.kill()
            print(api_log.read_text(), worker_log.read_text())
            redis.wait(timeout=30)


def run_session(client, model: str) -> str:
    agent = client.beta.agents.create(name=f"metered-{model}", model=model)
    environment = client.beta.environments.create(name=f"metered-{model}")
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "What is in /workspace?"}]}])
    wait_until(lambda: client.beta.sessions.retrieve(session.id).status == "idle"
               and any(e.type == "session.status_idle" for e in client.beta.sessions.events.list(session.id, limit=1000)),
               "the session to finish its turn")
    return session.id


def test_cost_counts_unmirrored_events_and_matches_after_the_recorder_runs(unrecorded):
    client, env, _ = unrecorded
    session_id = run_session(client, "claude-sonnet-4-5")
    tokens = expected_tokens(client, session_id)
    assert tokens["input_tokens"] > 0 and tokens["output_tokens"] > 0

    before = {s["session"]: s for s in report(env)["sessions"]}[session_id]
    assert before["unmirrored_events"] > 0, before  # no recorder has run: all of it came from Redis
    assert before["model"] == "claude-sonnet-4-5"
    assert (before["input_tokens"], before["output_tokens"]) == (tokens["input_tokens"], tokens["output_tokens"])
    token_cost = (tokens["input_tokens"] * SONNET["input"] + tokens["output_tokens"] * SONNET["output"]
                  + tokens["cache_read_input_tokens"] * SONNET["cache_read"] + tokens["cache_creation_input_tokens"] * SONNET["cache_write"]) / 1e6
    assert before["cost_usd"]["tokens"] == pytest.approx(token_cost, abs=1e-6)
    assert before["active_seconds"] > 0
    assert before["cost_usd"]["runtime"] == pytest.approx(before["active_seconds"] / 3600 * 0.08, abs=1e-6)
    assert before["cost_usd"]["total"] == pytest.approx(before["cost_usd"]["tokens"] + before["cost_usd"]["runtime"], abs=2e-6)

    # The recorder mirrors it all; the same figures come from SQLite now, counted once.
    recorded = subprocess.run([str(DROVER), "recorder", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert recorded.returncode == 0, recorded.stderr
    after = {s["session"]: s for s in report(env)["sessions"]}[session_id]
    assert after["unmirrored_events"] == 0
    for key in ("input_tokens", "output_tokens", "model_requests", "active_seconds", "cost_usd", "model"):
        assert after[key] == before[key], key


def test_a_rates_file_replaces_the_list_prices_and_unknown_models_are_named(unrecorded):
    client, env, tmp = unrecorded
    known = run_session(client, "claude-sonnet-4-5-20250929")  # a dated name takes its family's rate
    unknown = run_session(client, "claude-unreleased-9")
    rates = tmp / "rates.yaml"
    rates.write_text("runtime_per_session_hour: 3600\nmodels:\n  claude-sonnet-4-5: {input: 1000000, output: 0}\n")
    by_session = {s["session"]: s for s in report(env, "--rates", str(rates))["sessions"]}
    # A million dollars per million input tokens: a dollar a token; a dollar a running second.
    assert by_session[known]["cost_usd"]["tokens"] == pytest.approx(by_session[known]["input_tokens"], abs=1e-6)
    assert by_session[known]["cost_usd"]["runtime"] == pytest.approx(by_session[known]["active_seconds"], abs=1e-3)
    assert by_session[unknown]["unpriced_models"] == ["claude-unreleased-9"]
    assert by_session[unknown]["cost_usd"]["tokens"] == 0
    text = subprocess.run([str(DROVER), "report", "usage", "--rates", str(rates)], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "claude-unreleased-9, which have no rate" in text and "+ ?" in text

    # --print-rates writes a file --rates reads back to the same prices.
    printed = subprocess.run([str(DROVER), "report", "usage", "--print-rates"], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "runtime_per_session_hour: 0.08" in printed and "claude-sonnet-4-5: {input: 3, output: 15" in printed
    copy = tmp / "printed.yaml"
    copy.write_text(printed)
    assert report(env, "--rates", str(copy))["total"]["cost_usd"] == report(env)["total"]["cost_usd"]


@pytest.mark.parametrize("text, needle", [
    ("runtime_per_session_hour: -1\n", "runtime_per_session_hour"),
    ("models:\n  claude-sonnet-4-5: {input: 3}\n", "models.claude-sonnet-4-5.output"),
    ("models:\n  claude-sonnet-4-5: {input: 3, output: 15, cached: 1}\n", "cached"),
    ("models: [1, 2\n", "not valid YAML"),
])
def test_a_bad_rates_file_is_refused_naming_the_line_and_field(unrecorded, text, needle):
    _, env, tmp = unrecorded
    rates = tmp / "bad-rates.yaml"
    rates.write_text(text)
    run = subprocess.run([str(DROVER), "report", "usage", "--rates", str(rates)], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and needle in run.stderr and str(rates) in run.stderr, run.stderr
