"""The README's HTTP API example, run as it stands in the README, against a `drover serve` started
with no model key: the first hour with the API must work with nothing configured."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import anthropic
import httpx2 as httpx
import pytest

from conftest import DROVER, ROOT, free_port, wait_for

README = ROOT / "README.md"


def readme_example() -> tuple[str, str]:
    """The HTTP API section's shell block (the one that feeds Python to the SDK) and the output
    block after it."""
    section = README.read_text().split("\n## HTTP API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    index = next(i for i, (kind, body) in enumerate(blocks) if kind == "sh" and "<<'EOF'" in body)
    kind, output = blocks[index + 1]
    assert kind == "text", "the example's output should follow it in a ```text block"
    return blocks[index][1], output


def clean_environment(data: Path, bin_dir: Path) -> dict:
    """A shell as a new user has it after set-up: no model key, no Drover settings, `drover` on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DROVER_"))}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    # Only the data directory is the test's own, so that a developer's ./.drover is left alone.
    env["DROVER_DATA_DIR"] = str(data)
    return env


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_readme_http_example_prints_what_the_readme_says():
    script, expected = readme_example()
    assert port_is_free(8787), "port 8787 is in use: stop the drover serve (or whatever holds it) and run this test again"
    with tempfile.TemporaryDirectory(prefix="drover-readme-") as tmp:
        tmp = Path(tmp)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "drover").symlink_to(DROVER)
        shell = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=clean_environment(tmp / "data", bin_dir),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = shell.communicate(timeout=300)
        finally:
            # `kill %1` stopped drover serve; wait for it to finish draining, and end it if it hangs.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    os.killpg(shell.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                os.killpg(shell.pid, signal.SIGKILL)
                pytest.fail("drover serve was still running 60 s after `kill %1`")
        assert shell.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
        assert stdout.rstrip("\n") == expected.rstrip("\n"), f"stderr:\n{stderr}"
        assert stderr.startswith("drover serve: model: the scripted model (the built-in script"), stderr


def quick_start(base_url: str):
    """The SDK's quick-start, with an environment that has a network: the built-in script's tool
    calls run in a real sandbox, and the session goes idle with its answer."""
    client = anthropic.Anthropic(base_url=base_url, api_key="local")
    agent = client.beta.agents.create(name="quick", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    environment = client.beta.environments.create(name="quick", config={"type": "cloud", "networking": {"type": "unrestricted"}})
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    seen = []
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "Hi there"}]}])
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle":
                break
    uses = [e for e in seen if e.type == "agent.tool_use"]
    assert [(u.name, u.input) for u in uses] == [("bash", {"command": "ls -p /workspace"})], "the message names no file, so no read"
    results = [e for e in seen if e.type == "agent.tool_result"]
    assert len(results) == 1 and not results[0].is_error, results
    final = [e for e in seen if e.type == "agent.message"][-1]
    assert final.content[0].text.startswith("[scripted] Drover's scripted model"), final
    assert "bash: ls -p /workspace" in final.content[0].text
    assert seen[-1].stop_reason.type == "end_turn"


def test_serve_without_a_key_says_it_is_scripted_and_refuses_to_call_itself():
    with tempfile.TemporaryDirectory(prefix="drover-nokey-") as tmp:
        tmp = Path(tmp)
        env = clean_environment(tmp / "data", tmp)
        port = free_port()
        log = tmp / "serve.log"
        serve = subprocess.Popen([str(DROVER), "serve", "--address", f"127.0.0.1:{port}", "--no-scheduler"],
                                 stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(f"http://127.0.0.1:{port}/health", serve, log)
            health = httpx.get(f"http://127.0.0.1:{port}/health").json()
            assert health["model"] == {"kind": "scripted", "script": "built-in"}
            assert log.read_text().splitlines()[0].startswith("drover serve: model: the scripted model"), log.read_text()
            quick_start(f"http://127.0.0.1:{port}")
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0, log.read_text()

        # A model URL that is the server's own API would have every turn call itself.
        loop = subprocess.run([str(DROVER), "serve", "--address", f"127.0.0.1:{port}", "--no-scheduler"],
                              env=dict(env, ANTHROPIC_API_KEY="x", ANTHROPIC_BASE_URL=f"http://localhost:{port}"),
                              capture_output=True, text=True, timeout=60)
        assert loop.returncode != 0 and "ANTHROPIC_BASE_URL" in loop.stderr and "own API" in loop.stderr, loop.stderr

        # A port something listens on is refused before anything starts, with the fix.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = subprocess.run([str(DROVER), "serve", "--address", f"127.0.0.1:{taken.getsockname()[1]}"],
                                  env=env, capture_output=True, text=True, timeout=60)
        assert busy.returncode != 0 and "is in use" in busy.stderr and "--address 127.0.0.1:PORT" in busy.stderr, busy.stderr
        assert "redis-server" not in busy.stderr, "nothing should have started"

        # A script that does not load is refused before anything starts, naming the file and the line.
        script = tmp / "bad.yaml"
        script.write_text("playbook:\n  steps: []\n  final: 'Hello {{student}}'\n")
        bad = subprocess.run([str(DROVER), "serve", "--address", f"127.0.0.1:{port}", "--model-script", str(script)],
                             env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0, bad.stderr
        assert f"--model-script: {script}:3: playbook.final: {{{{student}}}} names no placeholder" in bad.stderr, bad.stderr
