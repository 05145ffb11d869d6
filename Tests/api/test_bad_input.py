"""Bad input gets a clear 4xx in the API's error shape, naming the field, and the server keeps serving."""
import threading
import time

import anthropic
import httpx2 as httpx
import pytest
from anthropic.types.beta_error_response import BetaErrorResponse

from conftest import BETA, validate


def error(response, status):
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    validate(BetaErrorResponse, body)
    return body["error"]["message"]


def test_malformed_and_mistyped_bodies_name_the_field(server, agent_env):
    agent, environment = agent_env
    assert "body" in error(server.raw("POST", "/v1/agents", content=b"{not json"), 400)
    assert "body" in error(server.raw("POST", "/v1/agents", content=b"[1, 2]"), 400)
    assert error(server.raw("POST", "/v1/agents", body={"name": 5, "model": "m"}), 400).startswith("name:")
    assert error(server.raw("POST", "/v1/agents", body={"name": "x"}), 400).startswith("model:")
    assert error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "tools": [{"type": "bogus"}]}), 400).startswith("tools[0].type:")
    assert error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "nmae": "typo"}), 400).startswith("nmae:")
    # The agent check job and schedule files share: nested fields are named in full, typos get a hint.
    assert "did you mean system?" in error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "sytem": "s"}), 400)
    toolset = {"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabeld": False}]}
    assert error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "tools": [toolset]}), 400).startswith("tools[0].configs[0].enabeld:")
    custom = {"type": "custom", "name": "c", "input_schema": {"type": "object"}}
    assert error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "tools": [custom]}), 400).startswith("tools[0].description:")
    # MCP servers from the API are URLs the worker reaches under the egress rules; a stdio server
    # would be a command on the worker's host.
    servers = [{"type": "stdio", "name": "local", "command": ["sh", "-c", "id"]}]
    assert error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "mcp_servers": servers}), 400).startswith("mcp_servers[0].type:")
    servers = [{"type": "url", "name": "docs", "url": "file:///etc/passwd"}]
    assert error(server.raw("POST", "/v1/agents", body={"name": "x", "model": "m", "mcp_servers": servers}), 400).startswith("mcp_servers[0].url:")
    assert error(server.raw("POST", f"/v1/agents/{agent.id}", body={"version": "two"}), 400).startswith("version:")
    assert error(server.raw("POST", "/v1/environments", body={"name": "e", "config": {"type": "cloud", "packages": {"pip": [1]}}}), 400).startswith("config.packages.pip[0]:")
    assert error(server.raw("POST", "/v1/sessions", body={"agent": agent.id}), 400).startswith("environment_id:")
    assert error(server.raw("GET", "/v1/agents?limit=1000"), 400).startswith("limit:")
    assert error(server.raw("GET", "/v1/agents?page=garbage"), 400).startswith("page:")


def test_bad_events(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    path = f"/v1/sessions/{session.id}/events"
    assert "events[0].type" in error(server.raw("POST", path, body={"events": [{"type": "user.dance"}]}), 400)
    assert "events[0].type" in error(server.raw("POST", path, body={"events": [{"type": "agent.message", "content": []}]}), 400)
    assert "events[0]" in error(server.raw("POST", path, body={"events": [{"type": "user.message", "content": "not a list"}]}), 400)
    assert "events" in error(server.raw("POST", path, body={"events": []}), 400)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.send(session.id, events=[{"type": "user.nope"}])
    assert "types" in error(server.raw("GET", path + "?types[]=user.dance"), 400)
    assert client.beta.sessions.events.list(session.id).data == [], "nothing bad was appended"


def test_ten_megabyte_body_is_413(server, agent_env):
    agent, environment = agent_env
    session = server.client().beta.sessions.create(agent=agent.id, environment_id=environment.id)
    big = b'{"events": [{"type": "user.message", "content": [{"type": "text", "text": "' + b"x" * (10 << 20) + b'"}]}]}'
    assert "body" in error(server.raw("POST", f"/v1/sessions/{session.id}/events", content=big), 413)
    one_event_too_big = {"events": [{"type": "user.message", "content": [{"type": "text", "text": "y" * (2 << 20)}]}]}
    error(server.raw("POST", f"/v1/sessions/{session.id}/events", body=one_event_too_big), 413)
    assert server.raw("GET", f"/v1/sessions/{session.id}").status_code == 200


def test_wrong_id_forms_and_unknown_routes(server):
    for path, parameter in (("/v1/agents/sesn_123", "agent_id"), ("/v1/sessions/agent_1", "session_id"),
                            ("/v1/environments/..%2F..", "environment_id"), ("/v1/sessions/sesn_%27%3B--/events", "session_id")):
        assert error(server.raw("GET", path), 400).startswith(parameter + ":"), path
    assert "not_found_error" == server.raw("GET", "/v1/agents/agent_01NOTTHERE").json()["error"]["type"]
    error(server.raw("GET", "/v1/nothing-here"), 404)


def test_missing_beta_header(server):
    response = server.raw("GET", "/v1/agents", headers={"anthropic-beta": "something-else"})
    assert "anthropic-beta" in error(response, 400)


def test_unbuilt_endpoints_answer_501(server, agent_env):
    _, _ = agent_env
    for method, path in (("GET", "/v1/memory_stores"), ("GET", "/v1/skills"), ("POST", "/v1/user_profiles")):
        message = error(server.raw(method, path, body={} if method == "POST" else None), 501)
        assert "not built yet" in message, path
    # The SDK's calls for other betas send their own beta header, and still learn what is not built.
    client = server.client()
    for call in (lambda: client.beta.memory_stores.list(), lambda: client.beta.skills.list(),
                 lambda: client.beta.user_profiles.list()):
        with pytest.raises(anthropic.APIStatusError) as unbuilt:
            call()
        assert unbuilt.value.status_code == 501 and "not built yet" in unbuilt.value.message


def test_sending_to_a_terminated_session_is_409(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    assert "terminated" in server.drover("sessions", "terminate", session.id)
    assert client.beta.sessions.retrieve(session.id).status == "terminated"
    message = error(server.raw("POST", f"/v1/sessions/{session.id}/events", body={"events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]}), 409)
    assert "terminated" in message
    with pytest.raises(anthropic.ConflictError):
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}])


def test_dropped_streams_cost_nothing(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    headers = {"anthropic-beta": BETA, "x-api-key": server.keys["alpha"]}
    url = f"{server.base_url}/v1/sessions/{session.id}/events/stream?event_deltas[]=agent.message"
    for _ in range(50):
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    # Each stream notices its client is gone at its next ping (0.5 s here) and releases everything.
    deadline = time.monotonic() + 15
    while server.raw("GET", "/health", workspace=None).json()["open_streams"] > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.raw("GET", "/health", workspace=None).json()["open_streams"] == 0
    # Still serving, streams included.
    events = []
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "still there?"}]}])
        for event in stream:
            events.append(event.type)
            if event.type == "session.status_idle":
                break
    assert events[0] == "user.message"


def test_stream_replays_from_last_event_id(server, agent_env):
    client = server.client()
    agent, environment = agent_env
    plain = client.beta.agents.create(name="replay", model="claude-sonnet-4-5")
    session = client.beta.sessions.create(agent=plain.id, environment_id=environment.id)
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}])
        for event in stream:
            if event.type == "session.status_idle":
                break
    logged = client.beta.sessions.events.list(session.id, limit=100).data
    replayed = []
    with client.beta.sessions.events.stream(session.id, extra_headers={"Last-Event-ID": logged[1].id}) as stream:
        for event in stream:
            replayed.append(event.id)
            if event.id == logged[-1].id:
                break
    assert replayed == [e.id for e in logged[2:]]


def test_too_many_streams_is_429_and_counts_per_workspace(server):
    import contextlib
    client = server.client("beta")
    agent = client.beta.agents.create(name="streams", model="claude-sonnet-4-5")
    environment = client.beta.environments.create(name="streams")
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    url = f"{server.base_url}/v1/sessions/{session.id}/events/stream"
    headers = {"anthropic-beta": BETA, "x-api-key": server.keys["beta"]}
    with contextlib.ExitStack() as stack:
        for _ in range(60):  # the suite's server allows 60 per workspace
            response = stack.enter_context(httpx.stream("GET", url, headers=headers, timeout=10))
            assert response.status_code == 200
        deadline = time.monotonic() + 10
        while server.raw("GET", "/health", workspace=None).json()["open_streams"] < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        refused = httpx.get(url, headers=headers, timeout=10)
        assert "streams" in error(refused, 429) and refused.headers["retry-after"] == "1"
        with pytest.raises(anthropic.RateLimitError):
            anthropic.Anthropic(base_url=server.base_url, api_key=server.keys["beta"], max_retries=0).beta.sessions.events.stream(session.id)
        # Another workspace is not affected.
        alpha = server.client("alpha")
        alpha_session = alpha.beta.sessions.create(agent=alpha.beta.agents.create(name="a", model="m").id,
                                                   environment_id=alpha.beta.environments.create(name="a").id)
        with httpx.stream("GET", f"{server.base_url}/v1/sessions/{alpha_session.id}/events/stream",
                          headers={"anthropic-beta": BETA, "x-api-key": server.keys["alpha"]}, timeout=10) as other:
            assert other.status_code == 200
    deadline = time.monotonic() + 15
    while server.raw("GET", "/health", workspace=None).json()["open_streams"] > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.raw("GET", "/health", workspace=None).json()["open_streams"] == 0


def test_the_sdk_raises_its_typed_errors(server):
    from anthropic.types.tool_name_conflict_error import ToolNameConflictError
    from anthropic.types.beta import BetaEnvironmentArchivedError, BetaEnvironmentNotFoundError, BetaInvalidMetadataError
    client = server.client()
    with pytest.raises(ToolNameConflictError) as conflict:
        client.beta.agents.create(name="dup", model="m", tools=[
            {"type": "agent_toolset_20260401"},
            {"type": "custom", "name": "bash", "description": "mine", "input_schema": {"type": "object"}}])
    assert conflict.value.error_code == "tool_name_conflict" and "bash" in str(conflict.value)
    with pytest.raises(BetaInvalidMetadataError):
        client.beta.agents.create(name="meta", model="m", metadata={f"k{i}": "v" for i in range(17)})
    with pytest.raises(BetaInvalidMetadataError):
        client.beta.environments.create(name="meta", metadata={"k": "v" * 513})
    environment = client.beta.environments.create(name="archived")
    client.beta.environments.archive(environment.id)
    agent = client.beta.agents.create(name="typed", model="m")
    with pytest.raises(BetaEnvironmentArchivedError):
        client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    client.beta.environments.delete(environment.id)
    with pytest.raises(BetaEnvironmentNotFoundError):
        client.beta.environments.retrieve(environment.id)


def test_tool_answers_must_answer_a_waiting_tool_use(server, agent_env):
    """A result or confirmation for a tool use that is not waiting is 422, and is not appended: in the
    log it would hand the model a tool result with no tool use, and every later turn would fail."""
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    path = f"/v1/sessions/{session.id}/events"
    sent = client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "weather?"}]}])
    message_id = sent.data[0].id
    deadline = time.monotonic() + 30
    use = []
    while not use and time.monotonic() < deadline:
        use = client.beta.sessions.events.list(session.id, types=["agent.custom_tool_use"]).data
        time.sleep(0.1)
    assert use, "the scripted model calls the custom tool"
    use_id = use[0].id

    def result(use_id, text="sunny"):
        return {"type": "user.custom_tool_result", "custom_tool_use_id": use_id, "content": [{"type": "text", "text": text}]}

    before = len(client.beta.sessions.events.list(session.id, limit=100).data)
    message = error(server.raw("POST", path, body={"events": [result(f"sevt_{session.id}_9999")]}), 422)
    assert message.startswith("events[0].custom_tool_use_id:") and "has no event" in message
    assert "is the session's user.message event" in error(server.raw("POST", path, body={"events": [result(message_id)]}), 422)
    confirmation = {"type": "user.tool_confirmation", "tool_use_id": use_id, "result": "allow"}
    assert error(server.raw("POST", path, body={"events": [confirmation]}), 422).startswith("events[0].tool_use_id:")
    message = error(server.raw("POST", path, body={"events": [result(use_id), result(use_id, "twice")]}), 422)
    assert message.startswith("events[1].custom_tool_use_id:") and "already answered" in message
    with pytest.raises(anthropic.UnprocessableEntityError):
        client.beta.sessions.events.send(session.id, events=[result("sevt_unknown_1")])
    assert len(client.beta.sessions.events.list(session.id, limit=100).data) == before, "no refused answer was appended"

    client.beta.sessions.events.send(session.id, events=[result(use_id)])
    assert "already answered" in error(server.raw("POST", path, body={"events": [result(use_id, "again")]}), 422)
    deadline = time.monotonic() + 30
    idle = []
    while time.monotonic() < deadline:
        idle = client.beta.sessions.events.list(session.id, limit=100, types=["session.status_idle"]).data
        if idle and idle[-1].stop_reason.type == "end_turn":
            break
        time.sleep(0.1)
    assert idle and idle[-1].stop_reason.type == "end_turn", "the session was not poisoned and finished its turn"


HOSTILE_INTEGERS = ("9223372036854775807", "9223372036854775808", "-1", "-9223372036854775808", "1e308", "NaN", "0x10", "99999999999999999999999")


def test_hostile_numbers_are_400_on_every_list_endpoint(server, agent_env):
    """Issue 12, hole 4: `page_9223372036854775807` once trapped on `offset + limit` and stopped the
    whole of `drover serve` (API, worker, recorder and scheduler). Every list endpoint now answers
    400 naming the parameter, and the server is still up after all of them."""
    client = server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    lists = ["/v1/agents", f"/v1/agents/{agent.id}/versions", "/v1/environments", "/v1/sessions",
             f"/v1/sessions/{session.id}/events", "/v1/deployments", "/v1/deployment_runs",
             f"/v1/sessions/{session.id}/resources", "/v1/files"]
    for path in lists:
        for number in HOSTILE_INTEGERS:
            for query in (f"page=page_{number}", f"limit={number}"):
                response = server.raw("GET", f"{path}?{query}")
                parameter = query.split("=")[0]
                assert error(response, 400).startswith(parameter + ":"), (path, query)
        # The largest offset a cursor may name is still a valid, empty page.
        page = server.raw("GET", f"{path}?page=page_1000000000") if "events" not in path else server.raw("GET", f"{path}?page=after_9223372036854775807")
        assert page.status_code == 200 and page.json()["data"] == [], (path, page.text[:200])
    for path in (f"/v1/sessions/{session.id}/events?page=before_9223372036854775807&order=desc",):
        assert server.raw("GET", path).status_code == 200
    for version in (1e300, 9223372036854775807, 2 ** 70, -1, 0.5):
        assert error(server.raw("POST", f"/v1/agents/{agent.id}", body={"version": version}), 400).startswith("version:"), version
        body = {"agent": {"type": "agent", "id": agent.id, "version": version}, "environment_id": environment.id}
        assert error(server.raw("POST", "/v1/sessions", body=body), 400).startswith("agent.version:"), version
    assert server.raw("GET", "/health", workspace=None).status_code == 200


def test_invalid_utf8_in_a_body_is_400_not_replaced(server, agent_env):
    agent, environment = agent_env
    session = server.client().beta.sessions.create(agent=agent.id, environment_id=environment.id)
    raw = b'{"events": [{"type": "user.message", "content": [{"type": "text", "text": "caf\xe9 \xff"}]}]}'
    assert "UTF-8" in error(server.raw("POST", f"/v1/sessions/{session.id}/events", content=raw), 400)
    assert server.client().beta.sessions.events.list(session.id).data == [], "nothing was appended"
    assert "UTF-8" in error(server.raw("POST", "/v1/agents", content=b'{"name": "\xc3\x28", "model": "m"}'), 400)


def test_deeply_nested_json_is_400_not_a_crash(server):
    for depth in (10_000, 200_000):
        nested = b'{"name": "n", "model": "m", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
        response = server.raw("POST", "/v1/agents", content=nested)
        assert response.status_code in (400, 413), (depth, response.status_code)
    assert server.raw("GET", "/health", workspace=None).status_code == 200
