"""The SDK's view of Drover: resources round-trip through the anthropic SDK's own models."""
import asyncio
import datetime
import urllib.parse
import os
import json
import re
import subprocess
import time

import anthropic
import pytest
from anthropic.lib.tools import beta_async_tool
from anthropic.types.beta import BetaEnvironment, BetaEnvironmentDeleteResponse, BetaManagedAgentsAgent, BetaManagedAgentsSession
from anthropic.types.beta.environments.beta_self_hosted_work_queue_stats import BetaSelfHostedWorkQueueStats
from anthropic.types.beta.beta_managed_agents_deleted_session import BetaManagedAgentsDeletedSession
from anthropic.types.beta.sessions.beta_managed_agents_send_session_events import BetaManagedAgentsSendSessionEvents
from anthropic.types.beta.sessions.beta_managed_agents_session_event import BetaManagedAgentsSessionEvent
from pydantic import TypeAdapter

from conftest import DROVER, WEATHER_TOOL, validate

EVENT = TypeAdapter(BetaManagedAgentsSessionEvent)


def user_message(text):
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def stream_until_idle(client, session_id, send=None, deltas=False):
    """Opens the stream, sends, and collects events until the turn is over (idle, not requires_action)."""
    seen = []
    kwargs = {"event_deltas": ["agent.message"]} if deltas else {}
    with client.beta.sessions.events.stream(session_id, **kwargs) as stream:
        if send:
            send()
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle" and event.stop_reason.type != "requires_action":
                break
            if event.type == "session.status_idle" and event.stop_reason.type == "requires_action":
                break
    return seen


def test_create_resources_validate_against_sdk_models(server, agent_env):
    agent, environment = agent_env
    raw_agent = server.raw("GET", f"/v1/agents/{agent.id}").json()
    parsed = validate(BetaManagedAgentsAgent, raw_agent)
    assert parsed.tools[0].name == "get_weather" and parsed.version == 1 and parsed.model.id == "claude-sonnet-4-5"
    raw_env = server.raw("GET", f"/v1/environments/{environment.id}").json()
    assert validate(BetaEnvironment, raw_env).config.type == "cloud"
    raw_session = server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id, "title": "t", "metadata": {"k": "v"}}).json()
    session = validate(BetaManagedAgentsSession, raw_session)
    assert session.status == "idle" and session.agent.id == agent.id and session.environment_id == environment.id
    assert session.metadata == {"k": "v"} and session.title == "t"


def test_user_message_streams_until_idle_with_previews(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    plain = client.beta.agents.create(name="plain", model="claude-sonnet-4-5")  # no tools: the scripted tool call errors
    session = client.beta.sessions.create(agent=plain.id, environment_id=environment.id)
    sent = []
    events = stream_until_idle(client, session.id, send=lambda: sent.append(client.beta.sessions.events.send(session.id, events=[user_message("weather?")])), deltas=True)
    types = [e.type for e in events]
    assert types[0] == "user.message" and "session.status_running" in types and types[-1] == "session.status_idle"
    assert events[-1].stop_reason.type == "end_turn"
    texts = [block.text for e in events if e.type == "agent.message" for block in e.content]
    assert any("sunny" in t for t in texts), texts
    assert "event_start" in types and "event_delta" in types, types
    # A preview carries the id of the agent.message that ends it, as the SDK documents.
    previews = [e.event.id for e in events if e.type == "event_start"]
    messages = [e.id for e in events if e.type == "agent.message"]
    assert previews and all(id in messages for id in previews), (previews, messages)
    assert all(e.event_id in previews for e in events if e.type == "event_delta")
    validate(BetaManagedAgentsSendSessionEvents, sent[0].model_dump(mode="json", exclude_unset=True))
    retrieved = server.raw("GET", f"/v1/sessions/{session.id}").json()
    parsed = validate(BetaManagedAgentsSession, retrieved)
    assert parsed.usage.input_tokens > 0 and parsed.usage.output_tokens > 0 and parsed.stats.duration_seconds >= 0


def test_events_paginate_both_ways(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    stream_until_idle(client, session.id, send=lambda: client.beta.sessions.events.send(session.id, events=[user_message("a")]))
    everything = server.raw("GET", f"/v1/sessions/{session.id}/events?limit=1000").json()["data"]
    for event in everything:
        EVENT.validate_python(event)
    assert len(everything) >= 6
    seqs = [e["id"] for e in everything]
    for order, expected in (("asc", seqs), ("desc", list(reversed(seqs)))):
        collected, page, pages = [], None, 0
        while True:
            query = f"?limit=2&order={order}" + (f"&page={page}" if page else "")
            body = server.raw("GET", f"/v1/sessions/{session.id}/events{query}").json()
            assert len(body["data"]) <= 2
            collected += [e["id"] for e in body["data"]]
            pages += 1
            page = body["next_page"]
            if not page:
                break
        assert collected == expected and pages >= 3
    # The SDK's own iterator follows next_page.
    assert [e.id for e in client.beta.sessions.events.list(session.id, limit=2)] == seqs
    only = client.beta.sessions.events.list(session.id, types=["user.message", "session.status_idle"], limit=100).data
    assert {e.type for e in only} == {"user.message", "session.status_idle"}


def test_update_agent_creates_versions_and_checks_version(server, agent_env):
    client = server.client()
    agent, _ = agent_env
    updated = client.beta.agents.update(agent.id, system="Be very brief.", version=1)
    assert updated.version == 2 and updated.system == "Be very brief."
    same = client.beta.agents.update(agent.id, system="Be very brief.")
    assert same.version == 2, "an update that changes nothing makes no version"
    stale = server.raw("POST", f"/v1/agents/{agent.id}", body={"version": 1, "name": "x"})
    assert stale.status_code == 409 and "version" in stale.json()["error"]["message"]
    versions = server.raw("GET", f"/v1/agents/{agent.id}/versions").json()
    assert [v["version"] for v in versions["data"]] == [2, 1]
    for v in versions["data"]:
        validate(BetaManagedAgentsAgent, v)
    assert client.beta.agents.retrieve(agent.id, version=1).system == "Be brief."
    assert client.beta.agents.retrieve(agent.id).version == 2


def test_archive_and_delete(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    archived = validate(BetaManagedAgentsSession, server.raw("POST", f"/v1/sessions/{session.id}/archive").json())
    assert archived.archived_at is not None
    assert session.id not in [s.id for s in client.beta.sessions.list(limit=100).data]
    assert session.id in [s.id for s in client.beta.sessions.list(limit=100, include_archived=True).data]
    refused = server.raw("POST", f"/v1/sessions/{session.id}/events", body={"events": [user_message("hi")]})
    assert refused.status_code == 400 and "archived" in refused.json()["error"]["message"]
    deleted = validate(BetaManagedAgentsDeletedSession, server.raw("DELETE", f"/v1/sessions/{session.id}").json())
    assert deleted.type == "session_deleted" and server.raw("GET", f"/v1/sessions/{session.id}").status_code == 404

    assert client.beta.agents.archive(agent.id).archived_at is not None
    assert agent.id not in [a.id for a in client.beta.agents.list(limit=100).data]
    no_session = server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id})
    assert no_session.status_code == 400 and "archived" in no_session.json()["error"]["message"]

    env_archived = validate(BetaEnvironment, server.raw("POST", f"/v1/environments/{environment.id}/archive").json())
    assert env_archived.archived_at is not None
    other = client.beta.agents.create(name="other", model="claude-sonnet-4-5")
    blocked = server.raw("POST", "/v1/sessions", body={"agent": other.id, "environment_id": environment.id})
    assert blocked.status_code == 400 and blocked.json()["error"]["error_code"] == "environment_archived"
    gone = validate(BetaEnvironmentDeleteResponse, server.raw("DELETE", f"/v1/environments/{environment.id}").json())
    assert gone.type == "environment_deleted"
    assert server.raw("GET", f"/v1/environments/{environment.id}").json()["error"]["error_code"] == "environment_not_found"


def test_environment_update_and_list(server):
    client = server.client()
    environment = client.beta.environments.create(
        name="py", config={"type": "cloud", "packages": {"pip": ["requests"]}, "networking": {"type": "limited", "allowed_hosts": []}})
    assert environment.config.packages.pip == ["requests"] and environment.config.networking.allowed_hosts == []
    updated = client.beta.environments.update(environment.id, description="with requests", metadata={"team": "grading"})
    assert updated.description == "with requests" and updated.metadata == {"team": "grading"}
    assert updated.config.packages.pip == ["requests"]
    listed = server.raw("GET", "/v1/environments?limit=100").json()
    assert environment.id in [validate(BetaEnvironment, e).id for e in listed["data"]]
    stats = validate(BetaSelfHostedWorkQueueStats, server.raw("GET", f"/v1/environments/{environment.id}/work/stats").json())
    assert stats.type == "work_queue_stats" and stats.depth >= 0 and stats.pending >= 0
    assert client.beta.environments.work.stats(environment.id).type == "work_queue_stats"  # the SDK call parses it too
    # A cloud environment's sessions run in Drover's sandboxes: it has no work to poll.
    assert server.raw("GET", f"/v1/environments/{environment.id}/work/poll").status_code == 400


def test_session_list_filters(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    sessions = []
    for _ in range(3):
        sessions.append(client.beta.sessions.create(agent=agent.id, environment_id=environment.id))
        time.sleep(0.005)  # distinct created_at milliseconds, for the bounds below
    by_agent = server.raw("GET", f"/v1/sessions?agent_id={agent.id}&limit=2").json()
    assert len(by_agent["data"]) == 2 and by_agent["next_page"]
    for s in by_agent["data"]:
        validate(BetaManagedAgentsSession, s)
    ids = [s.id for s in client.beta.sessions.list(agent_id=agent.id, limit=2)]
    assert sorted(ids) == sorted(s.id for s in sessions)
    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc")] == [s.id for s in sessions]
    idle = client.beta.sessions.list(agent_id=agent.id, statuses=["idle"]).data
    assert len(idle) == 3 and not client.beta.sessions.list(agent_id=agent.id, statuses=["terminated"]).data
    updated = client.beta.sessions.update(sessions[0].id, title="renamed", metadata={"a": "1"})
    assert updated.title == "renamed" and updated.metadata == {"a": "1"}
    # created_at bounds are instants: gt and lt exclude the bound, and an offset means what it says.
    middle = sessions[1].created_at
    after = [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", created_at_gt=middle)]
    from_ = [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", created_at_gte=middle)]
    before = [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", created_at_lt=middle)]
    assert after == [sessions[2].id] and from_ == [s.id for s in sessions[1:]] and before == [sessions[0].id]
    in_india = middle.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    assert in_india.isoformat().endswith("+05:30")
    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", created_at_gte=in_india)] == from_
    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", created_at_gt=in_india)] == after
    late = server.raw("GET", f"/v1/agents?created_at[gt]={urllib.parse.quote(agent.created_at.isoformat())}&limit=100").json()["data"]
    assert agent.id not in [a["id"] for a in late]
    early = server.raw("GET", f"/v1/agents?created_at[gte]={urllib.parse.quote(agent.created_at.isoformat())}&limit=100").json()["data"]
    assert agent.id in [a["id"] for a in early]
    bad = server.raw("GET", "/v1/sessions?created_at[gt]=yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("created_at[gt]:")


def test_agent_with_overrides_runs_a_changed_agent_and_leaves_the_agent_alone(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(
        agent={"type": "agent_with_overrides", "id": agent.id, "system": "Answer in French.", "tools": []}, environment_id=environment.id)
    assert session.agent.id == agent.id and session.agent.system == "Answer in French." and session.agent.tools == []
    assert client.beta.sessions.retrieve(session.id).agent.system == "Answer in French."
    unchanged = client.beta.agents.retrieve(agent.id)
    assert unchanged.version == agent.version and unchanged.system == agent.system and unchanged.tools
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.sessions.create(agent={"type": "agent_with_overrides", "id": agent.id, "name": "x"}, environment_id=environment.id)
    assert "agent.name" in refused.value.message
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.sessions.create(agent={"type": "agent_with_overrides", "id": agent.id, "model": 7}, environment_id=environment.id)
    assert "agent.model" in refused.value.message


def test_custom_tool_round_trip_with_session_tool_runner(server, agent_env):
    agent, environment = agent_env
    calls = []

    @beta_async_tool
    async def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    async def run():
        client = server.async_client()
        session = await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        runner = client.beta.sessions.events.tool_runner(session.id, tools=[get_weather], max_idle=1.0)

        async def send():
            await asyncio.sleep(0.3)
            await client.beta.sessions.events.send(session.id, events=[user_message("weather in Paris?")])

        dispatched = []
        sender = asyncio.create_task(send())
        async for call in runner:
            dispatched.append(call)
        await sender
        events = [e async for e in client.beta.sessions.events.list(session.id, limit=100)]
        return dispatched, events

    dispatched, events = asyncio.run(asyncio.wait_for(run(), 60))
    assert calls == ["Paris"]
    assert len(dispatched) == 1 and dispatched[0].posted and not dispatched[0].is_error
    types = [e.type for e in events]
    assert "agent.custom_tool_use" in types and "user.custom_tool_result" in types
    assert types[-1] == "session.status_idle" and events[-1].stop_reason.type == "end_turn"
    final = [b.text for e in events if e.type == "agent.message" for b in e.content]
    assert "It is sunny in Paris." in final[-1]


def test_openapi_describes_served_routes(server):
    doc = server.raw("GET", "/v1/openapi.json", workspace=None).json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v1/agents", "/v1/sessions/{session_id}/events/stream", "/v1/sessions/{session_id}/threads/{thread_id}/stream",
                 "/v1/environments/{environment_id}",
                 "/v1/vaults/{vault_id}/credentials/{credential_id}"):
        assert path in doc["paths"]
    assert "/v1/memory_stores" not in doc["paths"], "unbuilt endpoints are not advertised"
    # Request bodies are described, and every $ref names a schema the document holds (the
    # schemas are parsed from text at start: a typo there would drop them all).
    assert doc["paths"]["/v1/agents"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/AgentCreate"
    schemas = doc["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": ?"#/components/schemas/([A-Za-z]+)"', json.dumps(doc)))
    assert {"AgentCreate", "SessionCreate", "EventsSend", "DeploymentCreate", "Error"} <= refs
    assert refs <= set(schemas), f"unresolved: {refs - set(schemas)}"


def test_sessions_tail_follows_live_like_replay(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    env = server.env()
    tail = subprocess.Popen([str(DROVER), "sessions", "tail", session.id, "--until-idle"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        client.beta.sessions.events.send(session.id, events=[user_message("tail me")])
        # The custom tool call idles with requires_action, which does not end the tail; the result does.
        tool_uses = []
        deadline = time.monotonic() + 20
        while not tool_uses and time.monotonic() < deadline:
            tool_uses = client.beta.sessions.events.list(session.id, limit=100, types=["agent.custom_tool_use"]).data
            time.sleep(0.1)
        client.beta.sessions.events.send(session.id, events=[{
            "type": "user.custom_tool_result", "custom_tool_use_id": tool_uses[0].id, "content": [{"type": "text", "text": "sunny"}]}])
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0
    assert "tail me" in out and "It is sunny in Paris." in out
    # The same rendering as replay: the same lines after the time column.
    replay = server.drover("sessions", "replay", session.id)
    assert [line.split(None, 2)[1:] for line in out.splitlines()] == [line.split(None, 2)[1:] for line in replay.splitlines()[1:]]


def test_initial_events_start_a_turn(server, agent_env):
    client = server.client()
    _, environment = agent_env
    plain = client.beta.agents.create(name="initial", model="claude-sonnet-4-5")
    session = client.beta.sessions.create(agent=plain.id, environment_id=environment.id, initial_events=[user_message("start at once")])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        idle = client.beta.sessions.events.list(session.id, types=["session.status_idle"]).data
        if idle:
            break
        time.sleep(0.1)
    assert idle and idle[-1].stop_reason.type == "end_turn"
    first = client.beta.sessions.events.list(session.id, limit=1).data[0]
    assert first.type == "user.message" and first.content[0].text == "start at once"
    bad = server.raw("POST", "/v1/sessions", body={"agent": plain.id, "environment_id": environment.id, "initial_events": [{"type": "user.dance"}]})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("initial_events[0].type:")


def test_environment_defaults_and_unbuilt_settings(server):
    client = server.client()
    # With no config, an environment gets no network at all.
    plain = client.beta.environments.create(name="plain")
    assert plain.config.networking.type == "limited" and plain.config.networking.allowed_hosts == []
    # Both network types of the SDK are accepted and come back in its shapes.
    open_env = client.beta.environments.create(name="open", config={"type": "cloud", "networking": {"type": "unrestricted"}})
    assert open_env.config.networking.type == "unrestricted"
    listed = client.beta.environments.create(
        name="listed",
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["pypi.org", "*.github.com", "203.0.113.7"],
                                                "allow_package_managers": True}})
    assert listed.config.networking.type == "limited" and listed.config.networking.allowed_hosts == ["pypi.org", "*.github.com", "203.0.113.7"]
    assert listed.config.networking.allow_package_managers is True and listed.config.networking.allow_mcp_servers is False
    updated = client.beta.environments.update(plain.id, config={"type": "cloud", "networking": {"type": "unrestricted"}})
    assert updated.config.networking.type == "unrestricted"
    assert client.beta.environments.retrieve(plain.id).config.networking.type == "unrestricted"
    # A host entry that is a URL, has a port, or is a bare wildcard is a 400 naming the entry.
    for host in ["https://pypi.org", "pypi.org:443", "*", "a b"]:
        response = server.raw("POST", "/v1/environments", body={
            "name": "x", "config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["ok.example.com", host]}}})
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert message.startswith("config.networking.allowed_hosts[1]:") and "Fix:" in message, message
    typo = server.raw("POST", "/v1/environments", body={"name": "x", "config": {"type": "cloud", "networking": {"type": "limited", "allowed_host": []}}})
    assert typo.status_code == 400 and typo.json()["error"]["message"].startswith("config.networking.allowed_host:"), typo.text
    # A package manager other than pip is 501: never a silent downgrade.
    response = server.raw("POST", "/v1/environments", body={"name": "x", "config": {"type": "cloud", "packages": {"apt": ["ffmpeg"]}}})
    assert response.status_code == 501, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["message"].startswith("config.packages.apt:"), body
    # The server keeps serving, and an update that asks for it is refused the same way.
    refused = server.raw("POST", f"/v1/environments/{plain.id}", body={"config": {"type": "cloud", "packages": {"npm": ["left-pad"]}}})
    assert refused.status_code == 501
    assert client.beta.environments.retrieve(plain.id).config.networking.type == "unrestricted"