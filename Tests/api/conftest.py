"""Starts a real `drover serve` (API + worker + recorder) against the scripted model server, with
two API keys in two workspaces, and hands the tests SDK clients and a raw HTTP helper."""
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import anthropic
import httpx2 as httpx  # the SDK's own HTTP client
import pytest

ROOT = Path(__file__).resolve().parents[2]
DROVER = ROOT / ".build" / "debug" / "drover"
BETA = "managed-agents-2026-04-01"

SCRIPT = Path(__file__).with_name("script.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()}")


def wait_until(condition, what: str, seconds: float = 60):
    """The condition's first truthy value, checked every 0.1 s; fails the test, naming `what`, after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def terminate(*procs: subprocess.Popen) -> None:
    """SIGTERM to each that still runs, and SIGKILL to one that has not exited 60 s later."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def stop(serve: subprocess.Popen, stub: subprocess.Popen):
    """SIGTERM to `drover serve` (killed after 30 s) and to the model stub; serve's exit code, or "killed"."""
    serve.send_signal(signal.SIGTERM)
    try:
        code = serve.wait(timeout=30)
    except subprocess.TimeoutExpired:
        serve.kill()
        code = "killed"
    stub.send_signal(signal.SIGTERM)
    try:
        # The scripted model waits out an answer's scripted delay before it stops; a test double
        # that is slow to go is killed, not a failed test.
        stub.wait(timeout=10)
    except subprocess.TimeoutExpired:
        stub.kill()
        stub.wait(timeout=10)
    return code


class Server:
    def __init__(self, base_url: str, keys: dict, data_dir: Path, redis_url: str | None = None):
        self.base_url = base_url
        self.keys = keys
        self.data_dir = data_dir
        self.redis_url = redis_url

    def env(self) -> dict:
        """The environment a `drover` command needs to reach this server's data and Redis."""
        env = dict(os.environ, DROVER_DATA_DIR=str(self.data_dir))
        env.pop("DROVER_REDIS_URL", None)
        if self.redis_url:
            env["DROVER_REDIS_URL"] = self.redis_url
        return env

    def client(self, workspace: str = "alpha") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key=self.keys[workspace], max_retries=0)

    def async_client(self, workspace: str = "alpha") -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key=self.keys[workspace], max_retries=0)

    def raw(self, method: str, path: str, workspace: str | None = "alpha", body=None, content=None, headers=None, **kw) -> httpx.Response:
        h = {"anthropic-beta": BETA, "content-type": "application/json"}
        if workspace:
            h["x-api-key"] = self.keys[workspace]
        h.update(headers or {})
        return httpx.request(method, self.base_url + path, json=body, content=content, headers=h, timeout=30, **kw)

    def drover(self, *args: str) -> str:
        return subprocess.run([str(DROVER), *args], env=self.env(), check=True, capture_output=True, text=True, timeout=30).stdout

    def drover_stderr(self, *args: str) -> str:
        """What `drover ARGS` says on standard error (its notes), once it succeeded."""
        return subprocess.run([str(DROVER), *args], env=self.env(), check=True, capture_output=True, text=True, timeout=30).stderr


@contextlib.contextmanager
def sandboxed_server(prefix: str, script: str, *options: str, env_extra: dict | None = None, hands: str = "sandbox"):
    """A `drover serve` with real bubblewrap sandboxes (skipped where there is none), driven by the
    scripted model `script` (YAML text), with keys for workspaces alpha and beta. `env_extra` adds
    variables to the server's environment; `hands="in-process"` runs no sandbox at all."""
    if hands == "sandbox" and subprocess.run(["sh", "-c", "command -v bwrap"], capture_output=True).returncode != 0:
        pytest.skip("bubblewrap is not installed")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        script_file = tmp / "script.yaml"
        script_file.write_text(script)
        env = dict(os.environ, DROVER_DATA_DIR=str(data), ANTHROPIC_API_KEY="scripted", **(env_extra or {}))
        env.pop("DROVER_REDIS_URL", None)
        # Sandboxes (as nobody, when root) must traverse to their workspaces; the whole tree is
        # removed with the temporary directory.
        tmp.chmod(0o711)
        env["DROVER_HANDS_DIR"] = str(tmp / "hands")
        stub_port, api_port = free_port(), free_port()
        stub_log, serve_log = tmp / "stub.log", tmp / "serve.log"
        stub = subprocess.Popen([str(DROVER), "model-stub", "--script", str(script_file), "--port", str(stub_port)],
                                stdout=stub_log.open("w"), stderr=subprocess.STDOUT, env=env)
        keys = {w: subprocess.run([str(DROVER), "keys", "create", "--workspace", w], env=env, check=True, capture_output=True,
                                  text=True, timeout=30).stdout.strip() for w in ("alpha", "beta")}
        env["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{stub_port}"
        serve = subprocess.Popen([str(DROVER), "serve", "--address", f"127.0.0.1:{api_port}", "--hands", hands, "--no-scheduler", *options],
                                 stdout=serve_log.open("w"), stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(f"http://127.0.0.1:{api_port}/health", serve, serve_log)
            yield Server(f"http://127.0.0.1:{api_port}", keys, data)
        finally:
            stop(serve, stub)
            print(serve_log.read_text())


def final_answer(client, session_id):
    """The text of the session's last agent.message once it goes idle."""
    with client.beta.sessions.events.stream(session_id) as stream:
        texts = []
        for event in stream:
            if event.type == "agent.message":
                texts.append("".join(block.text for block in event.content))
            if event.type == "session.status_idle":
                break
            if event.type == "session.status_terminated":
                pytest.fail("the session terminated")
    return texts[-1]


@pytest.fixture(scope="session")
def server():
    assert DROVER.exists(), "build first: swift build"
    with tempfile.TemporaryDirectory(prefix="drover-api-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        env = dict(os.environ, DROVER_DATA_DIR=str(data), ANTHROPIC_API_KEY="scripted")
        env.pop("DROVER_REDIS_URL", None)
        # DROVER_TEST_REDIS_URL runs the shared server, and the drover commands tests run beside
        # it (Server.env), on a Redis of your choosing, such as redis+cluster://127.0.0.1:7000
        # to put the SDK suite on a cluster. Servers of their own keep an embedded Redis.
        redis_url = os.environ.get("DROVER_TEST_REDIS_URL")
        if redis_url:
            env["DROVER_REDIS_URL"] = redis_url
        stub_port, api_port = free_port(), free_port()
        stub_log, serve_log = tmp / "stub.log", tmp / "serve.log"
        stub = subprocess.Popen([str(DROVER), "model-stub", "--script", str(SCRIPT), "--port", str(stub_port)],
                                stdout=stub_log.open("w"), stderr=subprocess.STDOUT, env=env)
        keys = {}
        for workspace in ("alpha", "beta"):
            keys[workspace] = subprocess.run([str(DROVER), "keys", "create", "--workspace", workspace], env=env, check=True,
                                             capture_output=True, text=True, timeout=30).stdout.strip()
        env["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{stub_port}"
        serve = subprocess.Popen([str(DROVER), "serve", "--address", f"127.0.0.1:{api_port}", "--ping-seconds", "0.5", "--max-streams-per-workspace", "60", "--hands", "in-process"],
                                 stdout=serve_log.open("w"), stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(f"http://127.0.0.1:{api_port}/health", serve, serve_log)
            yield Server(f"http://127.0.0.1:{api_port}", keys, data, redis_url)
        finally:
            code = stop(serve, stub)
            print(serve_log.read_text())
            assert code == 0, f"drover serve did not drain cleanly on SIGTERM ({code})"


def validate(model, body: dict):
    """The SDK's pydantic model accepts the JSON, and the JSON has no field the model lacks."""
    parsed = model.model_validate(body)
    unknown = set(body) - set(model.model_fields)
    assert not unknown, f"fields the SDK does not define on {model.__name__}: {unknown}"
    return parsed


WEATHER_TOOL = {
    "type": "custom",
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def agent_env(server):
    """An agent with the custom tool, and an environment, in workspace alpha."""
    client = server.client()
    agent = client.beta.agents.create(name="weather", model="claude-sonnet-4-5", system="Be brief.", tools=[WEATHER_TOOL])
    environment = client.beta.environments.create(name="env")
    return agent, environment


# The scripted model runs the user's message as one bash command and quotes its output, so a
# session's answer shows what its sandbox did.
BASH_PLAYBOOK = """
playbook:
  steps:
    - tool: bash
      input: {command: "{{user_text}}"}
  final: "OUT<{{result_1}}>"
"""


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl in `directory`, for a test's own
    HTTPS server (which Drover's worker is told to trust with DROVER_EGRESS_TRUST)."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key
