"""/v1/deployments and /v1/deployment_runs through the SDK's client.beta.deployments.* and
client.beta.deployment_runs.*, against a real `drover serve` on the scripted model."""
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsDeployment, BetaManagedAgentsDeploymentRun

from conftest import validate

EVENTS = [{"type": "user.message", "content": [{"type": "text", "text": "What is the weather?"}]}]
CRON = {"type": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Berlin"}


@pytest.fixture
def plain_agent_env(server):
    """An agent without tools (the scripted model's tool call gets an error result, then the turn
    ends), and an environment, in workspace alpha."""
    client = server.client()
    agent = client.beta.agents.create(name="digest", model="claude-sonnet-4-5", system="Be brief.")
    environment = client.beta.environments.create(name="deploy-env")
    return agent, environment


def create(client, agent, environment, name, **kw):
    return client.beta.deployments.create(name=name, agent=agent.id, environment_id=environment.id, initial_events=EVENTS, **kw)


def test_create_retrieve_update_list_archive(server, plain_agent_env):
    client = server.client()
    agent, environment = plain_agent_env
    deployment = create(client, agent, environment, "weekday-digest", schedule=CRON, description="Weekday mornings.", metadata={"team": "wiki"})
    assert deployment.id.startswith("depl_") and deployment.status == "active" and deployment.paused_reason is None
    assert deployment.agent.id == agent.id and deployment.agent.version == 1 and deployment.environment_id == environment.id
    assert deployment.schedule.expression == "0 9 * * 1-5" and deployment.schedule.timezone == "Europe/Berlin"
    assert deployment.schedule.last_run_at is None
    upcoming = deployment.schedule.upcoming_runs_at
    assert len(upcoming) == 5 and upcoming == sorted(upcoming) and upcoming[0] > datetime.now(timezone.utc)
    # 09:00 in Berlin is 07:00 or 08:00 UTC, on weekdays only.
    assert all(t.astimezone(timezone.utc).hour in (7, 8) and t.weekday() < 5 for t in upcoming)

    raw = server.raw("GET", f"/v1/deployments/{deployment.id}").json()
    validate(BetaManagedAgentsDeployment, raw)
    assert raw["metadata"] == {"team": "wiki"} and raw["description"] == "Weekday mornings."

    agent_v2 = client.beta.agents.update(agent.id, version=1, system="Be very brief.")
    updated = client.beta.deployments.update(
        deployment.id, name="weekday-digest-2", agent=agent.id, metadata={"team": None, "owner": "ana"},
        schedule={"type": "cron", "expression": "*/15 * * * *", "timezone": "UTC"})
    assert updated.name == "weekday-digest-2" and updated.agent.version == agent_v2.version == 2
    assert updated.metadata == {"owner": "ana"} and updated.description == "Weekday mornings."
    assert updated.schedule.expression == "*/15 * * * *" and all(t.minute % 15 == 0 for t in updated.schedule.upcoming_runs_at)
    cleared = client.beta.deployments.update(deployment.id, schedule=None, description=None)
    assert cleared.schedule is None and cleared.description is None and cleared.name == "weekday-digest-2"

    other = create(client, agent, environment, "manual-only")
    listed = client.beta.deployments.list(limit=100).data
    ids = [d.id for d in listed]
    assert deployment.id in ids and other.id in ids
    for item in server.raw("GET", "/v1/deployments?limit=100").json()["data"]:
        validate(BetaManagedAgentsDeployment, item)
    assert [d.id for d in client.beta.deployments.list(agent_id=agent.id, limit=100).data] == [other.id, deployment.id]
    first = client.beta.deployments.list(agent_id=agent.id, limit=1)
    assert len(first.data) == 1 and first.has_next_page() and first.get_next_page().data[0].id == deployment.id

    archived = client.beta.deployments.archive(deployment.id)
    assert archived.archived_at is not None and archived.status == "active"
    assert deployment.id not in [d.id for d in client.beta.deployments.list(limit=100).data]
    assert deployment.id in [d.id for d in client.beta.deployments.list(limit=100, include_archived=True).data]
    with pytest.raises(anthropic.BadRequestError, match="archived"):
        client.beta.deployments.update(deployment.id, name="again")
    with pytest.raises(anthropic.BadRequestError, match="archived"):
        client.beta.deployments.run(deployment.id)


def test_pause_and_unpause(server, plain_agent_env):
    client = server.client()
    agent, environment = plain_agent_env
    deployment = create(client, agent, environment, "pausable", schedule={"type": "cron", "expression": "30 2 * * *", "timezone": "America/New_York"})
    paused = client.beta.deployments.pause(deployment.id)
    assert paused.status == "paused" and paused.paused_reason.type == "manual"
    # A paused schedule still shows what it would do if unpaused.
    assert len(paused.schedule.upcoming_runs_at) == 5
    validate(BetaManagedAgentsDeployment, server.raw("GET", f"/v1/deployments/{deployment.id}").json())
    assert deployment.id in [d.id for d in client.beta.deployments.list(status="paused", limit=100).data]
    assert deployment.id not in [d.id for d in client.beta.deployments.list(status="active", limit=100).data]
    unpaused = client.beta.deployments.unpause(deployment.id)
    assert unpaused.status == "active" and unpaused.paused_reason is None


def test_manual_run_creates_a_session_that_goes_idle(server, plain_agent_env):
    client = server.client()
    agent, environment = plain_agent_env
    deployment = create(client, agent, environment, "run-now")
    run = client.beta.deployments.run(deployment.id)
    assert run.id.startswith("drun_") and run.deployment_id == deployment.id and run.error is None
    assert run.trigger_context.type == "manual" and run.agent.id == agent.id and run.agent.version == 1

    session = client.beta.sessions.retrieve(run.session_id)
    assert session.agent.id == agent.id and session.environment_id == environment.id
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        idle = client.beta.sessions.events.list(run.session_id, types=["session.status_idle"]).data
        if idle and client.beta.sessions.retrieve(run.session_id).status == "idle":
            break
        time.sleep(0.2)
    assert idle and idle[-1].stop_reason.type == "end_turn"
    events = client.beta.sessions.events.list(run.session_id, limit=100).data
    assert events[0].type == "user.message" and events[0].content[0].text == "What is the weather?"
    assert any(e.type == "agent.message" and "sunny" in e.content[0].text for e in events)

    assert client.beta.deployment_runs.retrieve(run.id).session_id == run.session_id
    validate(BetaManagedAgentsDeploymentRun, server.raw("GET", f"/v1/deployment_runs/{run.id}").json())
    second = client.beta.deployments.run(deployment.id)
    runs = client.beta.deployment_runs.list(deployment_id=deployment.id).data
    assert [r.id for r in runs] == [second.id, run.id]
    for item in server.raw("GET", f"/v1/deployment_runs?deployment_id={deployment.id}").json()["data"]:
        validate(BetaManagedAgentsDeploymentRun, item)
    assert [r.id for r in client.beta.deployment_runs.list(deployment_id=deployment.id, trigger_type="manual").data] == [second.id, run.id]
    assert client.beta.deployment_runs.list(deployment_id=deployment.id, trigger_type="schedule").data == []
    assert client.beta.deployment_runs.list(deployment_id=deployment.id, has_error=True).data == []
    assert client.beta.deployment_runs.list(deployment_id="depl_missing").data == []
    # Manual runs do not move the schedule's last_run_at; this one has no schedule at all.
    assert client.beta.deployments.retrieve(deployment.id).schedule is None


@pytest.mark.parametrize("schedule, field", [
    ({"type": "cron", "expression": "0 9 * *", "timezone": "UTC"}, "schedule.expression"),
    ({"type": "cron", "expression": "61 9 * * *", "timezone": "UTC"}, "schedule.expression"),
    ({"type": "cron", "expression": "@daily", "timezone": "UTC"}, "schedule.expression"),
    ({"type": "cron", "expression": "0 9 * * *", "timezone": "Mars/Olympus_Mons"}, "schedule.timezone"),
    ({"type": "cron", "expression": "0 9 * * *"}, "schedule.timezone"),
    ({"type": "interval", "expression": "0 9 * * *", "timezone": "UTC"}, "schedule.type"),
])
def test_bad_schedule_is_400_naming_the_field(server, plain_agent_env, schedule, field):
    agent, environment = plain_agent_env
    body = {"name": "bad", "agent": agent.id, "environment_id": environment.id, "initial_events": EVENTS, "schedule": schedule}
    response = server.raw("POST", "/v1/deployments", body=body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith(field + ":") and "Fix:" in message, message
    with pytest.raises(anthropic.BadRequestError):
        server.client().beta.deployments.create(name="bad", agent=agent.id, environment_id=environment.id, initial_events=EVENTS, schedule=schedule)


def test_bad_bodies_are_400_naming_the_field(server, plain_agent_env):
    agent, environment = plain_agent_env
    good = {"name": "ok", "agent": agent.id, "environment_id": environment.id, "initial_events": EVENTS}
    for change, field in (({"initial_events": []}, "initial_events"), ({"name": ""}, "name"), ({"agent": "agent_missing"}, None),
                          ({"vault_ids": "vlt_1"}, "vault_ids"), ({"environment_id": None}, "environment_id"),
                          ({"initial_events": [{"type": "user.nonsense"}]}, "initial_events")):
        response = server.raw("POST", "/v1/deployments", body={**good, **change})
        if field is None:
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 400 and response.json()["error"]["message"].startswith(field), response.text
    taken = create(server.client(), agent, environment, "taken-name")
    assert server.raw("POST", "/v1/deployments", body={**good, "name": "taken-name"}).status_code == 409
    assert server.raw("GET", "/v1/deployments?status=paused&include_archived=true").status_code == 400
    assert server.raw("GET", "/v1/deployments/not-an-id").status_code == 400
    assert server.client().beta.deployments.retrieve(taken.id).name == "taken-name"


def test_another_workspace_gets_404(server, plain_agent_env):
    alpha, beta = server.client("alpha"), server.client("beta")
    agent, environment = plain_agent_env
    deployment = create(alpha, agent, environment, "private")
    run = alpha.beta.deployments.run(deployment.id)
    for method, path in (("GET", f"/v1/deployments/{deployment.id}"), ("POST", f"/v1/deployments/{deployment.id}"),
                         ("POST", f"/v1/deployments/{deployment.id}/archive"), ("POST", f"/v1/deployments/{deployment.id}/pause"),
                         ("POST", f"/v1/deployments/{deployment.id}/unpause"), ("POST", f"/v1/deployments/{deployment.id}/run"),
                         ("GET", f"/v1/deployment_runs/{run.id}")):
        response = server.raw(method, path, workspace="beta", body={"name": "stolen"} if method == "POST" else None)
        assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error", (method, path)
    with pytest.raises(anthropic.NotFoundError):
        beta.beta.deployments.retrieve(deployment.id)
    # Beta cannot deploy alpha's agent or environment either.
    assert server.raw("POST", "/v1/deployments", workspace="beta",
                      body={"name": "x", "agent": agent.id, "environment_id": environment.id, "initial_events": EVENTS}).status_code == 404
    assert deployment.id not in [d.id for d in beta.beta.deployments.list(limit=100, include_archived=True).data]
    assert beta.beta.deployment_runs.list(deployment_id=deployment.id).data == []
    assert run.id not in [r.id for r in beta.beta.deployment_runs.list(limit=1000).data]
    after = alpha.beta.deployments.retrieve(deployment.id)
    assert after.name == "private" and after.status == "active" and after.archived_at is None
    assert [r.id for r in alpha.beta.deployment_runs.list(deployment_id=deployment.id).data] == [run.id]


SCHEDULE_FILE = """\
name: applied-from-file
agent:
  model: claude-sonnet-4-5
  system: Be brief.
initial_events:
  - type: user.message
    content:
      - {type: text, text: hello}
schedule: {type: cron, expression: "0 6 * * *", timezone: UTC}
"""


def test_applied_schedules_are_in_the_local_workspace(server):
    """`drover apply` writes workspace wrkspc_default, the workspace of local (no-key) mode and of
    keys made for workspace `default`: such a caller sees the deployments of Schedules/."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "applied-from-file.yaml").write_text(SCHEDULE_FILE)
        assert "applied-from-file" in server.drover("apply", tmp)
    server.keys["default"] = server.drover("keys", "create", "--workspace", "default").strip()
    local = server.client("default")
    applied = [d for d in local.beta.deployments.list(limit=100).data if d.name == "applied-from-file"]
    assert len(applied) == 1 and applied[0].schedule.expression == "0 6 * * *"
    assert all(t.hour == 6 and t.minute == 0 for t in applied[0].schedule.upcoming_runs_at)
    assert "applied-from-file" not in [d.name for d in server.client("alpha").beta.deployments.list(limit=100).data]


def test_a_run_whose_environment_is_gone_records_the_error_and_no_session(server, plain_agent_env):
    client = server.client()
    agent, _ = plain_agent_env
    archived = client.beta.environments.create(name="short-lived")
    deleted = client.beta.environments.create(name="shorter-lived")
    first = create(client, agent, archived, "env-archived")
    second = create(client, agent, deleted, "env-deleted")
    client.beta.environments.archive(archived.id)
    client.beta.environments.delete(deleted.id)
    for deployment, error_type in ((first, "environment_archived_error"), (second, "environment_not_found_error")):
        run = client.beta.deployments.run(deployment.id)
        assert run.session_id is None and run.error is not None and run.error.type == error_type, run
        assert "Fix:" in run.error.message
        validate(BetaManagedAgentsDeploymentRun, server.raw("GET", f"/v1/deployment_runs/{run.id}").json())
        assert [r.id for r in client.beta.deployment_runs.list(deployment_id=deployment.id, has_error=True).data] == [run.id]
        # Only a scheduled fire pauses the deployment (the scheduler tests cover that).
        assert client.beta.deployments.retrieve(deployment.id).status == "active"


def test_vault_ids_reach_the_sessions_a_deployment_fires_and_a_gone_vault_stops_its_runs(server, plain_agent_env):
    client = server.client()
    agent, environment = plain_agent_env
    kept, archived, deleted = (client.beta.vaults.create(display_name=name) for name in ("kept", "archived", "deleted"))
    deployment = client.beta.deployments.create(
        name="with-vaults", agent=agent.id, environment_id=environment.id, initial_events=EVENTS, vault_ids=[kept.id])
    assert deployment.vault_ids == [kept.id]
    validate(BetaManagedAgentsDeployment, server.raw("GET", f"/v1/deployments/{deployment.id}").json())
    run = client.beta.deployments.run(deployment.id)
    assert run.error is None and client.beta.sessions.retrieve(run.session_id).vault_ids == [kept.id]
    # A vault that is not the caller's, or not there, is refused when the deployment is written.
    missing = server.raw("POST", f"/v1/deployments/{deployment.id}", body={"vault_ids": ["vlt_01JZZZZZZZZZZZZZZZZZZZZZZZ"]})
    assert missing.status_code == 404, missing.text
    for vault, error_type in ((archived, "vault_archived_error"), (deleted, "vault_not_found_error")):
        updated = client.beta.deployments.update(deployment.id, vault_ids=[kept.id, vault.id])
        assert updated.vault_ids == [kept.id, vault.id]
        if error_type == "vault_archived_error":
            client.beta.vaults.archive(vault.id)
        else:
            client.beta.vaults.delete(vault.id)
        failed = client.beta.deployments.run(deployment.id)
        assert failed.session_id is None and failed.error is not None and failed.error.type == error_type, failed
        assert "Fix:" in failed.error.message
