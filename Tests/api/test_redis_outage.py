"""Issue 12, hole 5: kill -9 of Redis, then a restart on its AOF, ended `drover serve` with "lost the
connection to Redis". Now serve stays up, /health says redis "down" meanwhile, and turns run again
once Redis is back."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import anthropic
import httpx2 as httpx
import pytest

from conftest import DROVER, SCRIPT, free_port, stop, wait_for


def processes_mentioning(text: str) -> list[str]:
    """Pids whose command line contains `text`; a process that ends while we look is skipped."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(entry.name)
    return found


def start_redis(directory: Path) -> subprocess.Popen:
    # fsync always: with everysec, Redis answers before writing its AOF while a slow fsync is under
    # way, and a kill -9 loses those acknowledged writes; this test counts on every one of them.
    socket_path = directory / "redis.sock"
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--unixsocket", str(socket_path), "--dir", str(directory),
                             "--appendonly", "yes", "--appendfsync", "always", "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
        time.sleep(0.02)
    return proc


def health(base: str) -> httpx.Response:
    return httpx.get(base + "/health", timeout=10)


def start_serve(tmp: Path, env: dict, workspace: str):
    """The scripted model stub, a key for `workspace`, and `drover serve` with in-process hands,
    all on `env`: (serve, stub, serve's log, base URL, key)."""
    stub_port, api_port = free_port(), free_port()
    stub_log, serve_log = tmp / "stub.log", tmp / "serve.log"
    stub = subprocess.Popen([str(DROVER), "model-stub", "--script", str(SCRIPT), "--port", str(stub_port)],
                            stdout=stub_log.open("w"), stderr=subprocess.STDOUT, env=env)
    key = subprocess.run([str(DROVER), "keys", "create", "--workspace", workspace], env=env, check=True,
                         capture_output=True, text=True, timeout=30).stdout.strip()
    env = dict(env, ANTHROPIC_BASE_URL=f"http://127.0.0.1:{stub_port}")
    base = f"http://127.0.0.1:{api_port}"
    serve = subprocess.Popen([str(DROVER), "serve", "--address", f"127.0.0.1:{api_port}", "--hands", "in-process"],
                             stdout=serve_log.open("w"), stderr=subprocess.STDOUT, env=env)
    return serve, stub, serve_log, base, key

@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_serve_survives_five_redis_restarts():
    with tempfile.TemporaryDirectory(prefix="drover-outage-") as tmp:
        tmp = Path(tmp)
        redis_dir = tmp / "redis"
        redis_dir.mkdir()
        redis = start_redis(redis_dir)
        env = dict(os.environ, DROVER_DATA_DIR=str(tmp / "data"), ANTHROPIC_API_KEY="scripted",
                   DROVER_REDIS_URL=f"unix://{redis_dir / 'redis.sock'}")
        serve, stub, serve_log, base, key = start_serve(tmp, env, "outage")
        try:
            wait_for(base + "/health", serve, serve_log)
            assert health(base).json()["redis"] == "up"
            client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
            agent = client.beta.agents.create(name="outage", model="claude-sonnet-4-5")
            environment = client.beta.environments.create(name="outage")
            for round in range(5):
                session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
                client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": f"round {round}"}]}])
                redis.send_signal(signal.SIGKILL)
                redis.wait(timeout=10)
                down = health(base)
                assert down.status_code == 503 and down.json()["redis"] == "down", down.text
                assert serve.poll() is None, serve_log.read_text()[-3000:]
                time.sleep(0.5)
                redis = start_redis(redis_dir)
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.beta.sessions.retrieve(session.id).status == "idle" and any(
                                e.type == "session.status_idle" for e in client.beta.sessions.events.list(session.id, limit=100).data):
                            break
                    except anthropic.APIError:
                        pass
                    if time.monotonic() >= deadline:
                        # Say where the turn stuck: the session, its events and the queue.
                        state = [client.beta.sessions.retrieve(session.id).status,
                                 [e.type for e in client.beta.sessions.events.list(session.id, limit=100).data]]
                        for command in (["stats"], ["dead", "turns"]):
                            state.append(subprocess.run([str(DROVER), "queue", *command], env=env, capture_output=True, text=True, timeout=30).stdout)
                        pytest.fail(f"round {round} never finished: {state}\n{serve_log.read_text()[-3000:]}")
                    time.sleep(0.1)
                assert health(base).json()["redis"] == "up"
            assert serve.poll() is None
            log = serve_log.read_text()
            assert "Redis is unreachable" in log and "Redis is back" in log
        finally:
            code = stop(serve, stub)
            redis.kill()
            redis.wait(timeout=10)
        assert code == 0, f"serve did not stop cleanly on SIGTERM after the outages ({code}):\n{serve_log.read_text()[-3000:]}"


def redis_children(parent: int) -> list[int]:
    """The redis-server processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name == "redis-server" and int(rest[1]) == parent and rest[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_serve_starts_its_embedded_redis_again():
    """The embedded redis-server under `drover serve` dies (OOM killer, kill -9): serve starts it
    again on its AOF and turns run, where before every turn waited for a person to restart serve."""
    with tempfile.TemporaryDirectory(prefix="drover-embedded-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, DROVER_DATA_DIR=str(tmp / "data"), ANTHROPIC_API_KEY="scripted")
        env.pop("DROVER_REDIS_URL", None)
        serve, stub, serve_log, base, key = start_serve(tmp, env, "embedded")
        try:
            wait_for(base + "/health", serve, serve_log)
            client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
            agent = client.beta.agents.create(name="embedded", model="claude-sonnet-4-5")
            environment = client.beta.environments.create(name="embedded")
            pids = redis_children(serve.pid)
            assert len(pids) == 1, f"serve should own one redis-server, found {pids}"
            for round in range(3):
                os.kill(pids[0], signal.SIGKILL)
                deadline = time.monotonic() + 60
                while True:
                    fresh = redis_children(serve.pid)
                    if fresh and fresh != pids and health(base).json().get("redis") == "up":
                        break
                    assert serve.poll() is None, serve_log.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"round {round}: no new redis-server answered\n{serve_log.read_text()[-3000:]}"
                    time.sleep(0.1)
                pids = fresh
                session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
                client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": f"round {round}"}]}])
                deadline = time.monotonic() + 60
                while not any(e.type == "session.status_idle" for e in client.beta.sessions.events.list(session.id, limit=100).data):
                    assert time.monotonic() < deadline, f"round {round}: the turn never finished\n{serve_log.read_text()[-3000:]}"
                    time.sleep(0.1)
            assert "was killed by signal 9; started it again" in serve_log.read_text()
        finally:
            code = stop(serve, stub)
        assert code == 0, f"serve did not stop cleanly after its Redis was restarted ({code}):\n{serve_log.read_text()[-3000:]}"
        # serve asks its redis-server to shut down; it may take a moment to exit.
        deadline = time.monotonic() + 30
        while (left := processes_mentioning(str(tmp))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"serve left its redis-server running: {left}"
