"""Batches run by `drover run` are seen by the API in the local workspace: their sessions are
listed, retrieved and read like any other, in the SDK's shapes."""

import subprocess
import tempfile
from pathlib import Path

import pytest
from anthropic.types.beta import BetaManagedAgentsSession

from conftest import validate

JOB = """
name: api-visible
agent:
  name: checker
  model: claude-sonnet-4-5
  system: Check the item.
  tools: [{type: agent_toolset_20260401}]
items: {list: [alpha, beta]}
prompt: "Check item {{value}}"
output: {columns: [ok]}
playbook:
  steps: [{tool: bash, input: {command: "echo true"}}]
  final: '{"ok": {{result_1}}}'
"""


def test_batch_sessions_are_visible_to_the_api_in_the_local_workspace(server):
    if subprocess.run(["sh", "-c", "command -v bwrap"], capture_output=True).returncode != 0:
        pytest.skip("bubblewrap is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.yaml"
        job.write_text(JOB)
        out = server.drover("run", str(job), "--report-dir", str(Path(tmp) / "report"))
        assert "finished: 2 succeeded" in out, out
    server.keys["default"] = server.drover("keys", "create", "--workspace", "default").strip()
    local = server.client("default")
    batch = [s for s in local.beta.sessions.list(limit=100).data if (s.metadata or {}).get("drover_batch") == "batch_api_visible"]
    assert sorted(s.metadata["drover_item"] for s in batch) == ["alpha", "beta"], batch
    for listed in batch:
        raw = server.raw("GET", f"/v1/sessions/{listed.id}", workspace="default").json()
        session = validate(BetaManagedAgentsSession, raw)
        assert session.agent.name == "checker" and session.agent.system == "Check the item."
        assert session.title == f"api-visible: {listed.metadata['drover_item']}"
        events = local.beta.sessions.events.list(listed.id).data
        prompts = [e for e in events if e.type == "user.message"]
        assert [p.content[0].text for p in prompts] == [f"Check item {listed.metadata['drover_item']}"]
        assert any(e.type == "agent.tool_use" for e in events)
    # The job's agent is one stored agent, shared by every run of the unchanged job.
    assert len({s.agent.id for s in batch}) == 1
    # Another workspace sees none of it.
    assert not [s for s in server.client("alpha").beta.sessions.list(limit=100).data if (s.metadata or {}).get("drover_batch")]
