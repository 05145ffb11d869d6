"""Context compaction seen through the official SDK: a long run against a small window compacts,
and the SDK reads the events in its own types."""
from anthropic.types.beta.sessions import BetaManagedAgentsAgentThreadContextCompactedEvent, BetaManagedAgentsSessionErrorEvent

from conftest import final_answer, sandboxed_server

WINDOW = 12000
STEPS = 40  # within the 50 model requests an SDK agent gets per turn


def script() -> str:
    filler = "the abstract's finding, kept word for word " * 14
    steps = "".join(f'    - tool: echo\n      input: {{text: "abstract {n}: {filler}"}}\n' for n in range(1, STEPS + 1))
    return f"bytes_per_token: 4\ncontext_window: {WINDOW}\nplaybook:\n  steps:\n{steps}  final: \"Done; the last was {{{{last_result}}}}\"\n"


def test_a_long_run_compacts_and_the_sdk_reads_the_events():
    with sandboxed_server("drover-compaction-", script(), env_extra={"DROVER_CONTEXT_WINDOW": str(WINDOW)}, hands="in-process") as server:
        client = server.client()
        environment = client.beta.environments.create(name="reading-room", config={"type": "cloud"})
        agent = client.beta.agents.create(name="reader", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "Read the abstracts."}]}])
        answer = final_answer(client, session.id)
        assert f"abstract {STEPS}:" in answer, answer

        events = list(client.beta.sessions.events.list(session.id, limit=1000))
        compacted = [e for e in events if e.type == "agent.thread_context_compacted"]
        assert len(compacted) >= 2, [e.type for e in events]
        for event in compacted:
            assert isinstance(event, BetaManagedAgentsAgentThreadContextCompactedEvent)
            # Drover's own fields ride along as extras: the summary, and where the kept part starts.
            assert "Tool results:" in event.model_extra["summary"]
            assert event.model_extra["first_kept_event_id"] is None or event.model_extra["first_kept_event_id"].startswith("sevt_")
        # Every step ran once and the log kept every result: compaction shortened only the requests.
        uses = [e for e in events if e.type == "agent.tool_use"]
        assert [u.input["text"].split(":")[0] for u in uses] == [f"abstract {n}" for n in range(1, STEPS + 1)]
        assert len([e for e in events if e.type == "agent.tool_result"]) == STEPS
        assert not [e for e in events if isinstance(e, BetaManagedAgentsSessionErrorEvent)]
        ends = [e for e in events if e.type == "span.model_request_end"]
        assert max(e.model_usage.input_tokens for e in ends) < WINDOW
        usage = client.beta.sessions.retrieve(session.id).usage
        assert usage.input_tokens == sum(e.model_usage.input_tokens for e in ends)
