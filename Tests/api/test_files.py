"""The Files API and session resources of type file, through the SDK, against a `drover serve`
with real bubblewrap sandboxes: the scripted model `cat`s the mount path it is given, so the
session's events prove the uploaded bytes arrived in /workspace."""
import http.server
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import anthropic
import pytest
from anthropic.types.beta import BetaFileMetadata, BetaManagedAgentsSession
from anthropic.types.beta.beta_deleted_file import BetaDeletedFile
from anthropic.types.beta.sessions.beta_managed_agents_file_resource import BetaManagedAgentsFileResource

from conftest import DROVER, Server, final_answer, free_port, sandboxed_server, stop, validate, wait_for

# The first user message is the path to read; the final answer quotes what `cat` printed.
PLAYBOOK = """
playbook:
  steps:
    - tool: bash
      input: {command: "cat -- '{{user_text}}'"}
  final: "CONTENT<{{result_1}}>"
"""
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def files_server():
    with sandboxed_server("drover-files-", PLAYBOOK, "--max-file-bytes", str(LIMIT)) as server:
        yield server


@pytest.fixture(scope="module")
def agent_env(files_server):
    client = files_server.client()
    agent = client.beta.agents.create(name="reader", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    environment = client.beta.environments.create(name="files")
    return agent, environment


def test_upload_list_retrieve_download_delete(files_server):
    client = files_server.client()
    content = b"name,score\nada,3\n\x00\xffbinary-safe\n"
    uploaded = client.beta.files.upload(file=("../../etc/scores.csv", content, "text/csv"))
    assert uploaded.id.startswith("file_") and uploaded.filename == "scores.csv", "only the final path component is kept"
    assert uploaded.size_bytes == len(content) and uploaded.mime_type == "text/csv" and uploaded.type == "file"

    raw = files_server.raw("GET", f"/v1/files/{uploaded.id}", headers={"anthropic-beta": "files-api-2025-04-14"})
    assert raw.status_code == 200
    validate(BetaFileMetadata, raw.json())
    assert client.beta.files.retrieve_metadata(uploaded.id).size_bytes == len(content)
    assert client.beta.files.download(uploaded.id).read() == content

    stored = files_server.data_dir / "files"
    blobs = [p for p in stored.rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [uploaded.id], "bytes are stored under the file id, never the filename"
    assert blobs[0].stat().st_mode & 0o777 == 0o600 and blobs[0].read_bytes() == content

    more = [client.beta.files.upload(file=(f"f{i}.txt", f"file {i}".encode())) for i in range(3)]
    first = client.beta.files.list(limit=2)
    assert len(first.data) == 2 and first.next_page
    every = [f.id for f in client.beta.files.list(limit=2).iter_pages() for f in f.data]
    assert set(every) >= {uploaded.id, *(f.id for f in more)} and len(every) == len(set(every))
    assert more[0].mime_type == "text/plain"
    only = client.beta.files.list(ids=[more[1].id, "file_missing"])
    assert [f.id for f in only.data] == [more[1].id] and only.next_page is None

    deleted = files_server.raw("DELETE", f"/v1/files/{more[2].id}")
    validate(BetaDeletedFile, deleted.json())
    assert deleted.json() == {"id": more[2].id, "type": "file_deleted"}
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(more[2].id)
    assert not (stored / "wrkspc_alpha" / more[2].id).exists()


def test_session_file_resource_is_readable_in_the_sandbox(files_server, agent_env):
    client = files_server.client()
    agent, environment = agent_env
    secret = "line one\nthe bytes arrived: 42\n"
    uploaded = client.beta.files.upload(file=("notes.txt", secret.encode()))
    default = client.beta.files.upload(file=("other.txt", b"default mount"))
    session = client.beta.sessions.create(
        agent=agent.id, environment_id=environment.id,
        resources=[{"type": "file", "file_id": uploaded.id, "mount_path": "data/notes.txt"}, {"type": "file", "file_id": default.id}])
    raw = files_server.raw("GET", f"/v1/sessions/{session.id}").json()
    validate(BetaManagedAgentsSession, raw)
    mounts = {r["file_id"]: r for r in raw["resources"]}
    assert mounts[uploaded.id]["mount_path"] == "/workspace/data/notes.txt"
    assert mounts[default.id]["mount_path"] == f"/workspace/uploads/{default.id}"
    for resource in raw["resources"]:
        validate(BetaManagedAgentsFileResource, resource)

    listed = client.beta.sessions.resources.list(session.id)
    assert {r.file_id for r in listed.data} == {uploaded.id, default.id}
    one = client.beta.sessions.resources.retrieve(mounts[uploaded.id]["id"], session_id=session.id)
    assert one.mount_path == "/workspace/data/notes.txt"
    clash = files_server.raw("POST", f"/v1/sessions/{session.id}/resources",
                             body={"type": "file", "file_id": uploaded.id, "mount_path": "data/notes.txt/inner"})
    assert clash.status_code == 400 and "collides" in clash.json()["error"]["message"]

    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "/workspace/data/notes.txt"}]}])
    answer = final_answer(client, session.id)
    assert answer.endswith("CONTENT<line one\nthe bytes arrived: 42\n>"), answer


def test_another_workspace_cannot_see_or_mount_a_file(files_server, agent_env):
    alpha, beta = files_server.client("alpha"), files_server.client("beta")
    uploaded = alpha.beta.files.upload(file=("private.txt", b"alpha only"))
    for method, path in (("GET", f"/v1/files/{uploaded.id}"), ("GET", f"/v1/files/{uploaded.id}/content"), ("DELETE", f"/v1/files/{uploaded.id}")):
        response = files_server.raw(method, path, workspace="beta")
        assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error", path
    assert uploaded.id not in [f.id for f in beta.beta.files.list(limit=1000).data]
    agent = beta.beta.agents.create(name="thief", model="claude-sonnet-4-5")
    environment = beta.beta.environments.create(name="thief")
    with pytest.raises(anthropic.NotFoundError) as stolen:
        beta.beta.sessions.create(agent=agent.id, environment_id=environment.id,
                                  resources=[{"type": "file", "file_id": uploaded.id, "mount_path": "x.txt"}])
    assert uploaded.id in str(stolen.value)
    assert alpha.beta.files.download(uploaded.id).read() == b"alpha only", "beta's delete changed nothing"


@pytest.mark.parametrize("mount_path, says", [
    ("../escape.txt", "'..'"), ("/workspace/../etc/passwd", "'..'"), ("/etc/passwd", "outside /workspace"),
    ("/workspace", "outside /workspace"), ("/workspace/./", "/workspace itself"),
])
def test_bad_mount_paths_name_the_field(files_server, agent_env, mount_path, says):
    agent, environment = agent_env
    uploaded = files_server.client().beta.files.upload(file=("a.txt", b"a"))
    response = files_server.raw("POST", "/v1/sessions", body={
        "agent": agent.id, "environment_id": environment.id,
        "resources": [{"type": "file", "file_id": uploaded.id, "mount_path": mount_path}]})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("resources[0].mount_path:") and says in message and "Fix:" in message


def test_bad_resources_and_uploads_are_clear(files_server, agent_env):
    agent, environment = agent_env
    uploaded = files_server.client().beta.files.upload(file=("a.txt", b"a"))
    cases = [
        ([{"type": "file", "file_id": "file_01NOSUCHFILE"}], 404, "resources[0].file_id: file file_01NOSUCHFILE was not found"),
        ([{"type": "file", "file_id": "not-an-id"}], 400, "resources[0].file_id:"),
        ([{"type": "file"}], 400, "resources[0].file_id:"),
        ([{"type": "memory_store", "memory_store_id": "memstore_x"}], 400, "resources[0].type: memory_store resources are not built"),
        ([{"type": "github_repository", "url": "ftp://github.com/x/y"}], 400, "resources[0].url:"),
        ([{"type": "file", "file_id": uploaded.id, "mount_path": "site/a.txt"}, {"type": "github_repository", "url": "https://github.com/x/site"}],
         400, "resources[1].mount_path: /workspace/site collides"),
        ([{"type": "file", "file_id": uploaded.id, "mount_path": "a.txt"}, {"type": "file", "file_id": uploaded.id, "mount_path": "./a.txt"}], 400, "resources[1].mount_path:"),
        ([{"type": "file", "file_id": uploaded.id, "mountpath": "a.txt"}], 400, "resources[0].mountpath: unknown field"),
    ]
    for resources, status, says in cases:
        response = files_server.raw("POST", "/v1/sessions", body={"agent": agent.id, "environment_id": environment.id, "resources": resources})
        assert response.status_code == status and says in response.json()["error"]["message"], (resources, response.text)

    client = files_server.client()
    with pytest.raises(anthropic.APIStatusError) as large:
        client.beta.files.upload(file=("big.bin", b"x" * (LIMIT + 1)))
    assert large.value.status_code == 413 and f"over the limit of {LIMIT} bytes" in str(large.value)
    exact = client.beta.files.upload(file=("exact.bin", b"x" * LIMIT))
    assert exact.size_bytes == LIMIT

    not_multipart = files_server.raw("POST", "/v1/files", body={"file": "x"})
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="expires_in_seconds"):
        client.beta.files.upload(file=("a.txt", b"a"), expires_in_seconds=5)
    expiring = client.beta.files.upload(file=("a.txt", b"a"), expires_in_seconds=3600)
    assert expiring.expires_at is not None and (expiring.expires_at - expiring.created_at).total_seconds() == pytest.approx(3600, abs=1)


def test_a_file_added_to_a_live_session_arrives_at_the_next_call_and_no_planted_link_redirects_it(files_server, agent_env, tmp_path):
    client = files_server.client()
    agent, environment = agent_env
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    # A host directory the agent cannot see, but names: a host-side copy by path would follow its link there.
    outside = tmp_path / "host-directory"
    outside.mkdir()
    outside.chmod(0o777)
    tmp_path.chmod(0o755)
    plant = f"/dev/null'; ln -s {outside} /workspace/data; echo 'planted"
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": plant}]}])
    final_answer(client, session.id)

    through_link = client.beta.files.upload(file=("a.txt", b"must not leave the sandbox\n"))
    added = client.beta.sessions.resources.add(session.id, type="file", file_id=through_link.id, mount_path="data/a.txt")
    assert added.type == "file" and added.mount_path == "/workspace/data/a.txt"
    validate(BetaManagedAgentsFileResource, files_server.raw("GET", f"/v1/sessions/{session.id}/resources/{added.id}").json())
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "/workspace/data/a.txt"}]}])
    answer = final_answer(client, session.id)
    # In the sandbox the link leads nowhere it can write, so the file is refused, and says why; on the host nothing moved.
    assert "could not be put in place" in answer and "/workspace/data/a.txt" in answer, answer
    assert list(outside.iterdir()) == []

    fresh = client.beta.files.upload(file=("b.txt", b"added while the session lives\n"))
    client.beta.sessions.resources.add(session.id, type="file", file_id=fresh.id, mount_path="later/b.txt")
    removed = client.beta.sessions.resources.add(session.id, type="file", file_id=fresh.id, mount_path="gone/b.txt")
    client.beta.sessions.resources.delete(removed.id, session_id=session.id)
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "/workspace/later/b.txt"}]}])
    assert final_answer(client, session.id).endswith("CONTENT<added while the session lives\n>")
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "/workspace/gone/b.txt"}]}])
    assert "No such file" in final_answer(client, session.id), "a file removed before its delivery is never delivered"
    assert list(outside.iterdir()) == []


VAULT_KEY = os.urandom(32).hex()


class RecordingOrigin:
    """A plain HTTP server on loopback that keeps the Authorization header of each request."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def two_hosts():
    """Two hosts simulated on one machine, sharing only a Redis: `drover api` on host a and
    `drover worker` on host b, each with its own data directory and hands root, so a file
    resource can reach b's sandbox only through the file store. Yields the API and the root."""
    if subprocess.run(["sh", "-c", "command -v bwrap"], capture_output=True).returncode != 0:
        pytest.skip("bubblewrap is not installed")
    with tempfile.TemporaryDirectory(prefix="drover-two-hosts-") as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o711)
        redis_port, api_port = free_port(), free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        script = tmp / "script.yaml"
        script.write_text(PLAYBOOK)

        def env(host: str) -> dict:
            (tmp / host).mkdir(exist_ok=True)
            (tmp / host).chmod(0o711)
            # Every host holds the installation's vault key: workers open the secrets they read from Redis.
            variables = dict(os.environ, DROVER_DATA_DIR=str(tmp / host / "data"), DROVER_HANDS_DIR=str(tmp / host / "hands"),
                             DROVER_REDIS_URL=f"redis://127.0.0.1:{redis_port}", DROVER_API_ADDR=f"127.0.0.1:{api_port}",
                             DROVER_VAULT_KEY=VAULT_KEY)
            for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DROVER_DB"):
                variables.pop(name, None)
            return variables

        keys = {"alpha": subprocess.run([str(DROVER), "keys", "create", "--workspace", "alpha"], env=env("a"), check=True, capture_output=True,
                                        text=True, timeout=30).stdout.strip()}
        api_log, worker_log = tmp / "api.log", tmp / "worker.log"
        api = subprocess.Popen([str(DROVER), "api"], stdout=api_log.open("w"), stderr=subprocess.STDOUT, env=env("a"))
        worker = subprocess.Popen([str(DROVER), "worker", "--hands", "sandbox", "--model-script", str(script), "--concurrency", "2"],
                                  stdout=worker_log.open("w"), stderr=subprocess.STDOUT, env=env("b"))
        try:
            wait_for(f"http://127.0.0.1:{api_port}/health", api, api_log)
            yield Server(f"http://127.0.0.1:{api_port}", keys, tmp / "a" / "data"), tmp
        finally:
            code = stop(worker, api)
            redis.terminate()
            redis.wait(timeout=10)
            print(api_log.read_text(), worker_log.read_text())
            assert code == 0, f"drover worker did not drain cleanly on SIGTERM ({code})"


def test_on_two_hosts_a_file_resource_and_an_added_file_reach_a_worker_that_shares_no_disk_with_the_api(two_hosts):
    server, root = two_hosts
    client = server.client()
    agent = client.beta.agents.create(name="reader", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    environment = client.beta.environments.create(name="two-hosts")
    first = client.beta.files.upload(file=("notes.txt", b"written on host a, read on host b\n"))
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id,
                                          resources=[{"type": "file", "file_id": first.id, "mount_path": "data/notes.txt"}])
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "/workspace/data/notes.txt"}]}])
    assert final_answer(client, session.id) == "[scripted] CONTENT<written on host a, read on host b\n>"

    later = client.beta.files.upload(file=("later.txt", b"added while the session lives\n"))
    client.beta.sessions.resources.add(session.id, type="file", file_id=later.id, mount_path="later/b.txt")
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "/workspace/later/b.txt"}]}])
    assert final_answer(client, session.id) == "[scripted] CONTENT<added while the session lives\n>"

    # The workspace is b's alone; the uploaded bytes are a's alone.
    workspaces = lambda host: sorted(p.name for p in (root / host / "hands" / "workspaces").glob("sesn_*"))
    assert workspaces("a") == [] and workspaces("b") == [session.id]
    assert not (root / "b" / "data" / "files").exists() and (root / "a" / "data" / "files").exists()


def test_on_two_hosts_a_vault_credential_reaches_the_other_hosts_egress_proxy_and_never_its_sandbox(two_hosts):
    server, root = two_hosts
    client = server.client()
    origin = RecordingOrigin()
    try:
        secret = f"s3cret-{os.urandom(8).hex()}"
        vault = client.beta.vaults.create(display_name="course api")
        credential = client.beta.vaults.credentials.create(
            vault.id, auth={"type": "environment_variable", "secret_name": "COURSE_TOKEN", "secret_value": secret,
                            "networking": {"type": "limited", "allowed_hosts": ["127.0.0.1"]}})
        agent = client.beta.agents.create(name="reader", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
        environment = client.beta.environments.create(
            name="networked", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["127.0.0.1"]}})
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[vault.id])
        # The playbook cats the message; the quote ends that and runs the request on host b.
        request = (f"/dev/null'; echo token=$COURSE_TOKEN; curl -sS --noproxy '' --max-time 20 "
                   f"-H \"Authorization: Bearer $COURSE_TOKEN\" http://127.0.0.1:{origin.port}/grades; echo '")
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": request}]}])
        answer = final_answer(client, session.id)
        assert f"token=drover_placeholder_{credential.id.lower()}" in answer and answer.rstrip(">\n").endswith("ok"), answer
        assert origin.seen == [f"Bearer {secret}"], "the proxy on host b put the secret in, read from the copy in Redis"
        assert secret not in answer

        # Archived, the credential is gone from host b's proxy at the next call.
        client.beta.vaults.credentials.archive(credential.id, vault_id=vault.id)
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": request}]}])
        answer = final_answer(client, session.id)
        assert answer.rstrip(">\n").endswith("ok") and len(origin.seen) == 2 and secret not in origin.seen[-1], (answer, origin.seen)
        # Host b's disk holds no secret: not its data directory, not its hands root.
        for path in (root / "b").rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert secret.encode() not in path.read_bytes(), path
    finally:
        origin.stop()
