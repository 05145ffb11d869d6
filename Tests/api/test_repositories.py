"""github_repository resources end to end: a session names a private repository on a real git
smart-HTTP server over HTTPS (on the host's loopback, with its own certificate, demanding a
token). The worker clones it into /workspace through the egress proxy, the agent's `git push`
from the sandbox reaches the server, and the token is nowhere the sandbox or Drover's disk holds:
the remote is a plain URL, and only the proxy adds the token."""
import base64
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from anthropic.types.beta.sessions import BetaManagedAgentsDeleteSessionResource, BetaManagedAgentsGitHubRepositoryResource

from conftest import BASH_PLAYBOOK, final_answer, sandboxed_server, validate, self_signed_certificate
from git_server import GitServer, make_repository

PLAYBOOK = BASH_PLAYBOOK

TOKEN = f"ghp_{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def git_host():
    with tempfile.TemporaryDirectory(prefix="drover-git-") as tmp:
        tmp = Path(tmp)
        cert, key = self_signed_certificate(tmp)
        (tmp / "repos" / "acme").mkdir(parents=True)
        bare = make_repository(tmp / "repos" / "acme", "site.git")
        server = GitServer(tmp / "repos", TOKEN, cert, key)
        yield server, bare, cert
        server.stop()


@pytest.fixture(scope="module")
def repo_server(git_host):
    _, _, cert = git_host
    env = {"DROVER_EGRESS_TRUST": str(cert), "DROVER_INTERNAL_HOSTS": "127.0.0.1"}
    with sandboxed_server("drover-repos-", PLAYBOOK, env_extra=env) as server:
        yield server


def test_clone_and_push_with_a_token_only_the_proxy_holds(repo_server, git_host):
    git, bare, _ = git_host
    client = repo_server.client()
    url = f"https://127.0.0.1:{git.port}/acme/site.git"
    agent = client.beta.agents.create(name="site editor", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    # The environment lists no host: the repository alone opens its git requests.
    environment = client.beta.environments.create(
        name="editing", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["example.org"]}})
    session = client.beta.sessions.create(
        agent=agent.id, environment_id=environment.id,
        resources=[{"type": "github_repository", "url": url, "authorization_token": TOKEN, "checkout": {"type": "branch", "name": "feature"}}])
    [resource] = client.beta.sessions.resources.list(session.id).data
    validate(BetaManagedAgentsGitHubRepositoryResource, repo_server.raw("GET", f"/v1/sessions/{session.id}/resources/{resource.id}").json())
    assert resource.mount_path == "/workspace/site" and resource.checkout.name == "feature"
    assert TOKEN not in repo_server.raw("GET", f"/v1/sessions/{session.id}").text

    # The sandbox keeps NO_PROXY for its own loopback; the repository here is on the host's.
    command = ("cd /workspace/site && git log --format=%s -1 && echo remote=$(git remote get-url origin) && "
               "echo change > agent.md && git add agent.md && "
               "git -c user.name=Agent -c user.email=agent@example.org commit -qm 'from the sandbox' && "
               "NO_PROXY= no_proxy= git push -q origin HEAD:refs/heads/agent 2>&1; echo pushed=$?; "
               "curl -sS -o /dev/null -w 'other=%{http_code}\\n' --noproxy '' https://127.0.0.1:" + str(git.port) + "/acme/other.git/info/refs 2>&1; "
               # The token, encoded so that the command itself does not carry it into the log.
               "t=$(echo " + base64.b64encode(TOKEN.encode()).decode() + " | base64 -d); grep -rl \"$t\" /workspace /run /tmp 2>/dev/null | wc -l")
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": command}]}])
    answer = final_answer(client, session.id)
    assert "a lesson on feature" in answer, answer
    assert f"remote={url}" in answer and "pushed=0" in answer, answer
    assert "other=403" in answer, answer
    assert answer.rstrip(">").rstrip().endswith("0"), answer
    pushed = subprocess.run(["git", "-C", str(bare), "log", "--format=%s", "-1", "agent"], capture_output=True, text=True, check=True).stdout
    assert pushed.strip() == "from the sandbox"
    assert all(authorized for (_, path, authorized) in git.seen if "/acme/site.git/" in path), git.seen
    assert not any("/acme/other.git" in path for (_, path, _) in git.seen)

    # The token is nowhere Drover writes.
    root = repo_server.data_dir.parent
    for path in root.rglob("*"):
        if path.is_file() and not path.is_socket() and path.name != "disk.img":
            assert TOKEN.encode() not in path.read_bytes(), f"the token is in {path}"
    assert TOKEN not in repo_server.raw("GET", f"/v1/sessions/{session.id}/events?limit=1000").text


def test_repository_resources_change_while_the_session_lives(repo_server, git_host):
    git, _, _ = git_host
    client = repo_server.client()
    agent = client.beta.agents.create(name="a", model="claude-sonnet-4-5")
    environment = client.beta.environments.create(name="plain")
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    url = f"https://127.0.0.1:{git.port}/acme/site"
    added = repo_server.raw("POST", f"/v1/sessions/{session.id}/resources",
                            body={"type": "github_repository", "url": url, "authorization_token": "old", "mount_path": "work/site"})
    assert added.status_code == 200, added.text
    validate(BetaManagedAgentsGitHubRepositoryResource, added.json())
    resource = added.json()
    assert resource["mount_path"] == "/workspace/work/site" and "authorization_token" not in resource
    rotated = client.beta.sessions.resources.update(resource["id"], session_id=session.id, authorization_token="new")
    assert rotated.id == resource["id"]
    # The same path twice is a 400 that names the field.
    clash = repo_server.raw("POST", f"/v1/sessions/{session.id}/resources", body={"type": "github_repository", "url": url, "mount_path": "work"})
    assert clash.status_code == 400 and clash.json()["error"]["message"].startswith("resources[0].mount_path:"), clash.text
    for bad, field in [({"type": "github_repository", "url": "https://user:pw@example.org/a/b"}, "resources[0].url"),
                       ({"type": "github_repository", "url": url, "checkout": {"type": "branch", "name": "--upload-pack=x"}}, "resources[0].checkout.name"),
                       ({"type": "github_repository", "url": url, "checkout": {"type": "commit", "sha": "abc"}}, "resources[0].checkout.sha"),
                       ({"type": "github_repository", "url": url, "mount_path": "/etc/x"}, "resources[0].mount_path")]:
        refused = repo_server.raw("POST", f"/v1/sessions/{session.id}/resources", body=bad)
        assert refused.status_code == 400 and refused.json()["error"]["message"].startswith(field + ":"), refused.text
    deleted = repo_server.raw("DELETE", f"/v1/sessions/{session.id}/resources/{resource['id']}")
    validate(BetaManagedAgentsDeleteSessionResource, deleted.json())
    assert client.beta.sessions.resources.list(session.id).data == []
