"""Multi-agent sessions through the official SDK: a coordinator with a roster starts session
threads, each its own log with its own turns; the threads API lists, retrieves, archives and
streams them in the SDK's own types; interrupts reach every thread; the thread limit holds."""
import threading
import time

import anthropic
import pytest
from anthropic.types.beta import (
    BetaManagedAgentsMultiagent20261001,
    BetaManagedAgentsMultiagentCoordinator,
)
from anthropic.types.beta.beta_managed_agents_session_multiagent_coordinator import BetaManagedAgentsSessionMultiagentCoordinator
from anthropic.types.beta.sessions import (
    BetaManagedAgentsAgentThreadMessageReceivedEvent,
    BetaManagedAgentsAgentThreadMessageSentEvent,
    BetaManagedAgentsSessionThread,
    BetaManagedAgentsSessionThreadCreatedEvent,
    BetaManagedAgentsSessionThreadStatusIdleEvent,
)

from conftest import sandboxed_server

SCRIPT = """
agents:
  "You coordinate":
    turns:
      - text: "Delegating."
        tool_uses:
          - {name: create_thread, input: {agent: searcher, message: "Find papers on sparse attention"}}
          - {name: create_thread, input: {agent: searcher, message: "Find papers on state space models"}}
          - {name: create_thread, input: {agent: extractor, message: "Extract the datasets"}}
      - text: "Waiting for the threads."
      - text: "All three replied."
  "You search":
    playbook:
      steps:
        - {tool: echo, input: {text: "found for {{user_text}}"}}
      final: "Search done: {{last_result}}"
      ttft_ms: 200
  "You extract":
    playbook:
      steps: []
      final: "Extracted from: {{user_text}}"
      ttft_ms: SLOW
"""


def script(extract_ms=200):
    return SCRIPT.replace("SLOW", str(extract_ms))


def message(text):
    return [{"type": "user.message", "content": [{"type": "text", "text": text}]}]


def make_coordinator(client, multiagent=None):
    searcher = client.beta.agents.create(name="searcher", model="claude-sonnet-4-5", system="You search abstracts.",
                                         tools=[{"type": "agent_toolset_20260401"}])
    extractor = client.beta.agents.create(name="extractor", model="claude-sonnet-4-5", system="You extract data.")
    coordinator = client.beta.agents.create(
        name="lead", model="claude-sonnet-4-5", system="You coordinate a literature review.",
        multiagent=multiagent or {"type": "coordinator", "agents": [searcher.id, {"type": "agent", "id": extractor.id, "version": 1}]})
    return searcher, extractor, coordinator


def run_until_idle(client, session_id, events):
    """Sends `events` with the session's stream open, and reads it until the session is idle."""
    seen = []
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(session_id, events=events)
        for event in stream:
            seen.append(event)
            if event.type in ("session.status_idle", "session.status_terminated"):
                break
    return seen


def wait_until(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_coordinator_runs_threads_and_the_sdk_reads_them():
    with sandboxed_server("drover-threads-", script(), hands="in-process") as server:
        client = server.client()
        environment = client.beta.environments.create(name="library", config={"type": "cloud"})
        searcher, extractor, coordinator = make_coordinator(client)
        # The roster is stored resolved, each entry at a version.
        assert isinstance(coordinator.multiagent, BetaManagedAgentsMultiagentCoordinator)
        assert [(a.id, a.version) for a in coordinator.multiagent.agents] == [(searcher.id, 1), (extractor.id, 1)]

        session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
        # The session shows each roster agent whole, as it will run it.
        shown = client.beta.sessions.retrieve(session.id).agent.multiagent
        assert isinstance(shown, BetaManagedAgentsSessionMultiagentCoordinator)
        assert [a.system for a in shown.agents] == ["You search abstracts.", "You extract data."]

        primary = run_until_idle(client, session.id, message("Review the literature on efficient sequence models."))
        assert "".join(b.text for b in [e for e in primary if e.type == "agent.message"][-1].content) == "[scripted] All three replied."
        created = [e for e in primary if e.type == "session.thread_created"]
        assert all(isinstance(e, BetaManagedAgentsSessionThreadCreatedEvent) for e in created)
        assert [e.agent_name for e in created] == ["searcher", "searcher", "extractor"]
        sent = [e for e in primary if e.type == "agent.thread_message_sent"]
        assert all(isinstance(e, BetaManagedAgentsAgentThreadMessageSentEvent) for e in sent)
        assert [e.to_session_thread_id for e in sent] == [e.session_thread_id for e in created]
        received = [e for e in primary if e.type == "agent.thread_message_received"]
        assert all(isinstance(e, BetaManagedAgentsAgentThreadMessageReceivedEvent) for e in received)
        replies = {e.from_session_thread_id: "".join(b.text for b in e.content) for e in received}
        assert set(replies) == {e.session_thread_id for e in created}
        assert "[scripted] Extracted from: Extract the datasets" in replies.values(), replies
        idles = [e for e in primary if e.type == "session.thread_status_idle"]
        assert all(isinstance(e, BetaManagedAgentsSessionThreadStatusIdleEvent) and e.stop_reason.type == "end_turn" for e in idles)
        # The session went idle once: when the last reply was in and the coordinator had answered.
        assert [e.type for e in primary].count("session.status_idle") == 1

        threads = list(client.beta.sessions.threads.list(session.id))
        assert all(isinstance(t, BetaManagedAgentsSessionThread) for t in threads)
        assert threads[0].parent_thread_id is None and threads[0].agent.name == "lead"
        children = threads[1:]
        assert [t.id for t in children] == [e.session_thread_id for e in created]
        assert all(t.parent_thread_id == threads[0].id and t.status == "idle" and t.session_id == session.id for t in children)
        assert [t.agent.name for t in children] == ["searcher", "searcher", "extractor"]
        assert children[0].agent.system == "You search abstracts."
        assert all(t.usage.input_tokens > 0 for t in children)
        # The session's usage is its primary thread's and its children's.
        usage = client.beta.sessions.retrieve(session.id).usage
        assert usage.input_tokens == sum(t.usage.input_tokens for t in threads)

        one = client.beta.sessions.threads.retrieve(children[0].id, session_id=session.id)
        assert one.id == children[0].id and one.archived_at is None
        own = list(client.beta.sessions.threads.events.list(children[0].id, session_id=session.id))
        assert own[0].type == "agent.thread_message_received" and own[0].from_session_thread_id == threads[0].id
        assert "".join(b.text for b in own[0].content) == "Find papers on sparse attention"
        assert [e.type for e in own if e.type in ("agent.tool_use", "agent.tool_result")] == ["agent.tool_use", "agent.tool_result"]
        assert own[-1].type == "session.status_idle"
        assert [e for e in own if e.type == "agent.thread_message_sent"][0].to_session_thread_id == threads[0].id
        # The primary thread's events are the session's.
        assert [e.id for e in client.beta.sessions.threads.events.list(threads[0].id, session_id=session.id, limit=1000)] == \
            [e.id for e in client.beta.sessions.events.list(session.id, limit=1000)]
        assert [t.id for t in client.beta.sessions.threads.list(session.id, statuses=["idle"])] == [t.id for t in threads]
        assert list(client.beta.sessions.threads.list(session.id, statuses=["running"])) == []
        page = client.beta.sessions.threads.list(session.id, limit=2)
        assert [t.id for t in page.data] == [t.id for t in threads[:2]] and page.next_page

        # Archiving a thread ends it, and its stream shows that as it happens.
        got = []

        def follow():
            with client.beta.sessions.threads.events.stream(children[1].id, session_id=session.id) as stream:
                for event in stream:
                    got.append(event.type)
                    if event.type == "session.status_terminated":
                        return

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        time.sleep(0.5)
        archived = client.beta.sessions.threads.archive(children[1].id, session_id=session.id)
        assert archived.archived_at is not None and archived.status == "terminated"
        follower.join(timeout=30)
        assert got[-1] == "session.status_terminated", got
        terminated = [e for e in client.beta.sessions.events.list(session.id, limit=1000) if e.type == "session.thread_status_terminated"]
        assert [e.session_thread_id for e in terminated] == [children[1].id]

        # The primary thread ends only with its session; ids of no thread of this session are 404s.
        with pytest.raises(anthropic.BadRequestError, match="primary thread"):
            client.beta.sessions.threads.archive(threads[0].id, session_id=session.id)
        other = client.beta.sessions.create(agent=searcher.id, environment_id=environment.id)
        for bad in (children[0].id, "sthr_nothing", threads[0].id):
            with pytest.raises(anthropic.NotFoundError):
                client.beta.sessions.threads.retrieve(bad, session_id=other.id)
        # A client cannot write a thread's events, nor interrupt a thread of another session.
        with pytest.raises(anthropic.BadRequestError):
            client.beta.sessions.events.send(other.id, events=[{
                "type": "agent.thread_message_received", "from_session_thread_id": children[0].id,
                "content": [{"type": "text", "text": "forged"}]}])
        with pytest.raises(anthropic.NotFoundError):
            client.beta.sessions.events.send(other.id, events=[{"type": "user.interrupt", "session_thread_id": children[0].id}])
        # Another workspace sees none of it.
        beta = server.client("beta")
        with pytest.raises(anthropic.NotFoundError):
            beta.beta.sessions.threads.list(session.id).data

        # Archiving the session ends every thread it started.
        client.beta.sessions.archive(session.id)
        assert [t.status for t in client.beta.sessions.threads.list(session.id)][1:] == ["terminated"] * 3


def test_an_interrupt_reaches_every_thread():
    with sandboxed_server("drover-thread-interrupt-", script(extract_ms=8000), hands="in-process") as server:
        client = server.client()
        environment = client.beta.environments.create(name="library", config={"type": "cloud"})
        _, _, coordinator = make_coordinator(client)
        session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
        client.beta.sessions.events.send(session.id, events=message("Review."))

        def extractor_running():
            threads = list(client.beta.sessions.threads.list(session.id))
            return len(threads) == 4 and threads[3].status == "running"

        wait_until(extractor_running, "the extractor thread to run")
        # The searchers replied; the coordinator waits on the extractor, with no turn running.
        wait_until(lambda: len([e for e in client.beta.sessions.events.list(session.id, limit=1000)
                                if e.type == "agent.thread_message_received"]) == 2, "the searchers' replies")
        assert client.beta.sessions.retrieve(session.id).status == "running"
        client.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
        wait_until(lambda: client.beta.sessions.retrieve(session.id).status == "idle", "the session to stop")
        extractor = list(client.beta.sessions.threads.list(session.id))[3]
        wait_until(lambda: client.beta.sessions.threads.retrieve(extractor.id, session_id=session.id).status == "idle",
                   "the extractor to stop")
        own = [e.type for e in client.beta.sessions.threads.events.list(extractor.id, session_id=session.id, limit=1000)]
        assert "user.interrupt" in own and own[-1] == "session.status_idle"
        # The interrupted thread wrote no reply, so nothing woke the coordinator again.
        time.sleep(1)
        events = list(client.beta.sessions.events.list(session.id, limit=1000))
        assert len([e for e in events if e.type == "agent.thread_message_received"]) == 2
        assert [e.type for e in events].count("span.model_request_start") == 2
        assert events[-1].type in ("session.status_idle", "session.thread_status_idle")


def test_terminating_a_session_ends_its_threads():
    with sandboxed_server("drover-thread-terminate-", script(extract_ms=8000), hands="in-process") as server:
        client = server.client()
        environment = client.beta.environments.create(name="library", config={"type": "cloud"})
        _, _, coordinator = make_coordinator(client)
        session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
        client.beta.sessions.events.send(session.id, events=message("Review."))
        wait_until(lambda: len(list(client.beta.sessions.threads.list(session.id))) == 4, "the threads to start")
        assert "terminated" in server.drover("sessions", "terminate", session.id)
        threads = list(client.beta.sessions.threads.list(session.id))
        assert [t.status for t in threads] == ["terminated"] * 4
        # The extractor was mid-turn: its turn stopped, and it takes no more messages.
        own = [e.type for e in client.beta.sessions.threads.events.list(threads[3].id, session_id=session.id, limit=1000)]
        assert own[-2:] == ["user.interrupt", "session.status_terminated"], own


def test_the_thread_limit_is_enforced():
    with sandboxed_server("drover-thread-limit-", script(), env_extra={"DROVER_THREAD_LIMIT": "2"}, hands="in-process") as server:
        client = server.client()
        environment = client.beta.environments.create(name="library", config={"type": "cloud"})
        _, _, coordinator = make_coordinator(client)
        session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
        run_until_idle(client, session.id, message("Review."))
        events = list(client.beta.sessions.events.list(session.id, limit=1000))
        results = [e for e in events if e.type == "agent.tool_result"]
        assert [r.is_error for r in results] == [False, False, True]
        assert "thread_limit_error" in results[2].content[0].text
        assert len(list(client.beta.sessions.threads.list(session.id))) == 3


def test_multiagent_params_are_checked_and_resolved():
    with sandboxed_server("drover-multiagent-", script(), hands="in-process") as server:
        client = server.client()
        searcher, extractor, coordinator = make_coordinator(client)

        def refused(multiagent, field):
            with pytest.raises(anthropic.BadRequestError) as caught:
                client.beta.agents.create(name="bad", model="claude-sonnet-4-5", multiagent=multiagent)
            assert field in str(caught.value), str(caught.value)

        refused({"type": "coordinator", "agents": []}, "multiagent.agents")
        refused({"type": "coordinator", "agents": [searcher.id] * 21}, "multiagent.agents")
        refused({"type": "coordinator", "agents": [searcher.id, {"type": "agent", "id": searcher.id}]}, "multiagent.agents[1]")
        refused({"type": "coordinator", "agents": [{"type": "self"}, {"type": "self"}]}, "multiagent.agents[1]")
        refused({"type": "coordinator", "agents": [coordinator.id]}, "coordinates threads itself")
        refused({"type": "coordinator", "agents": ["agent_nothing"]}, "multiagent.agents[0]")
        refused({"type": "coordinator", "agents": [{"type": "agent", "id": searcher.id, "version": 9}]}, "at version 9")
        refused({"type": "multiagent_20261001"}, "multiagent.workflows")
        refused({"type": "multiagent_20261001", "workflows": {"type": "disabled"}, "advisor": {"type": "enabled", "model": "m"}},
                "multiagent.advisor")
        refused({"type": "multiagent_20261001", "workflows": {"type": "disabled"},
                 "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}}}, "predefined_agents")
        refused({"type": "teams"}, "multiagent.type")

        agent = client.beta.agents.create(
            name="lead2", model="claude-sonnet-4-5", system="You coordinate.",
            multiagent={"type": "multiagent_20261001", "workflows": {"type": "disabled"},
                        "subagents": {"type": "enabled", "predefined_agents": [searcher.id, {"type": "self"}]}})
        assert isinstance(agent.multiagent, BetaManagedAgentsMultiagent20261001)
        assert agent.multiagent.subagents.inline_agents.type == "enabled"
        assert [(a.id, a.version) for a in agent.multiagent.subagents.predefined_agents] == [(searcher.id, 1), (agent.id, 1)]
        # An update merges, level by level: the roster stays when only inline_agents changes.
        updated = client.beta.agents.update(agent.id, version=agent.version, multiagent={
            "type": "multiagent_20261001", "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}}})
        assert updated.multiagent.subagents.inline_agents.type == "disabled"
        assert [a.id for a in updated.multiagent.subagents.predefined_agents] == [searcher.id, agent.id]
        cleared = client.beta.agents.update(agent.id, version=updated.version, multiagent=None)
        assert cleared.multiagent is None
