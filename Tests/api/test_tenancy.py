"""Two keys in two workspaces: neither can read, list, stream or write the other's resources (I7)."""
import anthropic
import pytest

from conftest import BETA


def test_workspaces_cannot_see_each_other(server, agent_env):
    alpha, beta = server.client("alpha"), server.client("beta")
    agent, environment = agent_env
    session = alpha.beta.sessions.create(agent=agent.id, environment_id=environment.id)

    for path in (f"/v1/agents/{agent.id}", f"/v1/agents/{agent.id}/versions", f"/v1/environments/{environment.id}",
                 f"/v1/sessions/{session.id}", f"/v1/sessions/{session.id}/events", f"/v1/sessions/{session.id}/events/stream"):
        response = server.raw("GET", path, workspace="beta")
        assert response.status_code == 404, path
        assert response.json()["error"]["type"] == "not_found_error", path

    writes = [
        ("POST", f"/v1/agents/{agent.id}", {"name": "stolen"}),
        ("POST", f"/v1/agents/{agent.id}/archive", None),
        ("POST", f"/v1/environments/{environment.id}", {"name": "stolen"}),
        ("DELETE", f"/v1/environments/{environment.id}", None),
        ("POST", f"/v1/sessions/{session.id}", {"title": "stolen"}),
        ("POST", f"/v1/sessions/{session.id}/archive", None),
        ("DELETE", f"/v1/sessions/{session.id}", None),
        ("POST", f"/v1/sessions/{session.id}/events", {"events": [{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]}),
        ("POST", "/v1/sessions", {"agent": agent.id, "environment_id": environment.id}),
    ]
    for method, path, body in writes:
        assert server.raw(method, path, workspace="beta", body=body).status_code == 404, (method, path)

    assert agent.id not in [a.id for a in beta.beta.agents.list(limit=100).data]
    assert environment.id not in [e.id for e in beta.beta.environments.list(limit=100).data]
    assert session.id not in [s.id for s in beta.beta.sessions.list(limit=100, include_archived=True).data]
    with pytest.raises(anthropic.NotFoundError):
        beta.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}])

    # Nothing beta tried changed alpha's resources.
    assert alpha.beta.agents.retrieve(agent.id).name == "weather" and alpha.beta.agents.retrieve(agent.id).archived_at is None
    assert alpha.beta.sessions.retrieve(session.id).title is None
    assert alpha.beta.sessions.events.list(session.id).data == []
    assert alpha.beta.environments.retrieve(environment.id).name == "env"


def test_keys_are_required_and_checked(server):
    assert server.raw("GET", "/v1/agents", workspace=None).status_code == 401
    wrong = server.raw("GET", "/v1/agents", workspace=None, headers={"x-api-key": "drv-not-a-key"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    bearer = server.raw("GET", "/v1/agents", workspace=None, headers={"authorization": f"Bearer {server.keys['beta']}"})
    assert bearer.status_code == 200
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server.base_url, api_key="drv-wrong", max_retries=0).beta.agents.list()
    other = server.raw("GET", "/v1/agents", headers={"anthropic-workspace-id": "wrkspc_beta"})
    assert other.status_code == 403 and other.json()["error"]["type"] == "permission_error"


def test_revoked_key_is_refused(server):
    created = server.drover("keys", "create", "--workspace", "gamma").strip()
    headers = {"x-api-key": created}
    assert server.raw("GET", "/v1/agents", workspace=None, headers=headers).status_code == 200
    listing = server.drover("keys", "list")
    assert created not in listing, "keys list never shows a secret"
    key_id = next(line.split()[0] for line in listing.splitlines() if "wrkspc_gamma" in line)
    server.drover("keys", "revoke", key_id)
    assert server.raw("GET", "/v1/agents", workspace=None, headers=headers).status_code == 401
