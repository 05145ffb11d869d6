"""The web console (`/console`) in a real browser: Debian's headless Chromium through
chromium-driver and selenium, against a real `drover serve` that has run a real batch in real
bubblewrap sandboxes. What the browser does is checked through the SDK, and the pages' screenshots
are kept in $DROVER_TEST_ARTIFACTS (default .build/test-artifacts/console)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from conftest import BASH_PLAYBOOK, DROVER, ROOT, free_port, sandboxed_server, wait_for

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

ARTIFACTS = Path(os.environ.get("DROVER_TEST_ARTIFACTS", ROOT / ".build" / "test-artifacts")) / "console"

JOB = """
name: console-check
agent:
  name: checker
  model: claude-sonnet-4-5
  system: Check the item.
  tools: [{type: agent_toolset_20260401}]
items: {list: [alpha, beta, gamma]}
prompt: "Check item {{value}}"
output: {columns: [ok, item]}
playbook:
  steps: [{tool: bash, input: {command: "printf checked-{{value}}"}}]
  final: '{"ok": true, "item": "{{result_1}}"}'
"""

EVENTS = [{"type": "user.message", "content": [{"type": "text", "text": "Write the digest."}]}]


# What chromedriver says, instead of a stale element, when the page went away mid-command.
PAGE_REPLACED = ("does not belong to the document", "Cannot find context with specified id")


def wait_until(condition, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None  # the page was being replaced under the read: look again
        except WebDriverException as error:
            # The same, as chromedriver sometimes words it when the element it found belonged to
            # the page that a form's answer has just replaced.
            if not any(sign in str(error) for sign in PAGE_REPLACED):
                raise
            value = None
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def console():
    """A sandboxed `drover serve` with API keys, after `drover run` of a three-item job; a key of
    the `default` workspace (the one `drover run` writes) and a deployment with a schedule."""
    with sandboxed_server("drover-console-", BASH_PLAYBOOK) as server:
        with tempfile.TemporaryDirectory() as tmp:
            job = Path(tmp) / "job.yaml"
            job.write_text(JOB)
            env = server.env()
            env.pop("ANTHROPIC_API_KEY", None)  # the job's playbook, on the scripted model
            run = subprocess.run([str(DROVER), "run", str(job), "--report-dir", str(Path(tmp) / "report")], env=env,
                                 capture_output=True, text=True, timeout=120)
            assert run.returncode == 0 and "finished: 3 succeeded" in run.stdout, run.stdout + run.stderr
        server.keys["default"] = server.drover("keys", "create", "--workspace", "default").strip()
        client = server.client("default")
        agent = client.beta.agents.create(name="digest", model="claude-sonnet-4-5", system="Be brief.")
        environment = client.beta.environments.create(name="digest-env")
        deployment = client.beta.deployments.create(
            name="weekday-digest", agent=agent.id, environment_id=environment.id, initial_events=EVENTS,
            schedule={"type": "cron", "expression": "0 9 * * 1-5", "timezone": "UTC"})
        yield server, deployment


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup installs them)")
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000"):
        options.add_argument(argument)
    # Selenium must not look for a driver on the network: Debian's is the one.
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(browser, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    browser.get_screenshot_as_file(str(path))
    assert path.stat().st_size > 10_000, f"{path} is too small to show a page"
    return path


def sign_in(browser, server, workspace: str):
    browser.delete_all_cookies()
    browser.get(server.base_url + "/console")
    assert "/console/login" in browser.current_url and "Sign in" in browser.title
    browser.find_element(By.NAME, "key").send_keys(server.keys[workspace])
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_until(lambda: "/console/batches" in browser.current_url, "the batches page after signing in")


def test_from_a_batch_to_an_item_to_its_timeline_and_live_tail(console, browser):
    server, _ = console
    sign_in(browser, server, "default")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-batch="batch_console_check"]')
    assert "completed" in row.text and "3/3" in row.text and "succeeded 3" in row.text, row.text
    shot(browser, "batches")

    row.find_element(By.LINK_TEXT, "batch_console_check").click()
    wait_until(lambda: browser.find_elements(By.ID, "item-beta"), "the batch's items")
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.items th")]
    assert headers[-2:] == ["item", "ok"], headers
    for item in ("alpha", "beta", "gamma"):
        cells = browser.find_element(By.ID, f"item-{item}").text
        assert "succeeded" in cells and f"checked-{item}" in cells and "true" in cells, cells
    shot(browser, "batch")

    item = browser.find_element(By.ID, "item-beta")
    session_id = item.find_element(By.CSS_SELECTOR, "a[href^='/console/sessions/']").text
    item.find_element(By.LINK_TEXT, session_id).click()
    wait_until(lambda: browser.find_elements(By.ID, "timeline"), "the session's timeline")
    assert session_id in browser.find_element(By.TAG_NAME, "h1").text
    client = server.client("default")
    events = list(client.beta.sessions.events.list(session_id))
    entries = browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry")
    # Every event the SDK lists, in order, is an entry of the page.
    assert [e.get_attribute("data-type") for e in entries] == [e.type for e in events]
    by_type = {e.get_attribute("data-type"): e.text for e in entries}
    assert "Check item beta" in by_type["user.message"]
    assert "bash" in by_type["agent.tool_use"] and "printf checked-beta" in by_type["agent.tool_use"]
    assert "checked-beta" in by_type["agent.tool_result"]
    assert browser.find_element(By.ID, "session-status").text == "idle"
    shot(browser, "session")

    # The live tail: a message sent through the SDK shows up on the open page, with no reload.
    wait_until(lambda: browser.find_element(By.ID, "live").is_displayed(), "the page to follow the session live")
    marker = browser.find_element(By.TAG_NAME, "h1")
    # What a session prints is text on the page, never markup: here, an element the page would have.
    command = "echo followed-live '<img src=x id=injected>'"
    client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": command}]}])
    result = wait_until(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, '#timeline li[data-type="agent.tool_result"]')
                                 if "followed-live" in e.text], "the new tool result on the open page")
    assert "followed-live <img src=x id=injected>" in result[0].text
    assert not browser.find_elements(By.ID, "injected")
    wait_until(lambda: client.beta.sessions.retrieve(session_id).status == "idle", "the session to go idle")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry")) == len(list(client.beta.sessions.events.list(session_id))),
               "every new event on the page")
    assert marker.is_displayed()  # the same page: an element from before is still attached
    wait_until(lambda: browser.find_element(By.ID, "session-status").text == "idle", "the status to follow")
    shot(browser, "session-live")


def test_pause_and_unpause_a_deployment_through_the_ui(console, browser):
    server, deployment = console
    sign_in(browser, server, "default")
    browser.find_element(By.LINK_TEXT, "Deployments").click()
    section = browser.find_element(By.CSS_SELECTOR, f'section[data-deployment="{deployment.id}"]')
    assert "0 9 * * 1-5 (UTC)" in section.text and "active" in section.text
    section.find_element(By.LINK_TEXT, "weekday-digest").click()
    browser.find_element(By.CSS_SELECTOR, "button[value=pause]").click()
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "p.notice"), "the outcome of the pause")
    assert "Paused" in browser.find_element(By.CSS_SELECTOR, "p.notice").text
    assert browser.find_element(By.ID, "deployment-status").text == "paused"
    client = server.client("default")
    assert client.beta.deployments.retrieve(deployment.id).status == "paused"
    shot(browser, "deployment-paused")
    browser.find_element(By.CSS_SELECTOR, "button[value=unpause]").click()
    wait_until(lambda: browser.find_element(By.ID, "deployment-status").text == "active", "the unpause")
    assert client.beta.deployments.retrieve(deployment.id).status == "active"
    # Run now asks first, then starts a manual run that the SDK lists.
    browser.find_element(By.CSS_SELECTOR, "button[value=run]").click()
    wait_until(lambda: browser.switch_to.alert, "the confirmation").accept()
    notice = wait_until(lambda: browser.find_element(By.CSS_SELECTOR, "p.notice").text.startswith("Started session"), "the run's outcome")
    runs = client.beta.deployment_runs.list(deployment_id=deployment.id).data
    assert [r.trigger_context.type for r in runs] == ["manual"] and notice
    row = browser.find_element(By.CSS_SELECTOR, "table.runs tbody tr")
    assert runs[0].id in row.text and runs[0].session_id in row.text
    # The SDK's `deployment_id` filter finds the session the run started; the console's link, the same.
    assert [s.id for s in client.beta.sessions.list(deployment_id=deployment.id).data] == [runs[0].session_id]
    browser.find_element(By.LINK_TEXT, "Sessions it started").click()
    wait_until(lambda: [r.get_attribute("data-session") for r in browser.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr")]
               == [runs[0].session_id], "the deployment's sessions")


def test_sessions_filter_and_queues_page(console, browser):
    server, deployment = console
    sign_in(browser, server, "default")
    browser.get(server.base_url + "/console/sessions?batch=batch_console_check&status=idle")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr")
    listed = {s.id for s in server.client("default").beta.sessions.list(limit=100).data
              if (s.metadata or {}).get("drover_batch") == "batch_console_check"}
    assert {r.get_attribute("data-session") for r in rows} == listed and len(listed) == 3
    browser.get(server.base_url + "/console/sessions?status=running&batch=batch_console_check")
    assert not browser.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr")
    # A batch's sessions and a deployment's are never the same: both filters match nothing (the
    # deployment's run-now session exists from the test before; one filter used to be dropped).
    browser.get(server.base_url + f"/console/sessions?deployment={deployment.id}")
    ran = [r.get_attribute("data-session") for r in browser.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr")]
    browser.get(server.base_url + f"/console/sessions?batch=batch_console_check&deployment={deployment.id}")
    assert not browser.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr"), ran
    browser.get(server.base_url + "/console/queues")
    section = browser.find_element(By.CSS_SELECTOR, "section.queue")
    assert section.find_element(By.CSS_SELECTOR, "td.leased").text.isdigit()
    shot(browser, "queues")


def console_get(server, path: str, key: str | None = None, **kw) -> httpx.Response:
    cookies = {"drover_console": server.keys[key]} if key else None
    return httpx.get(server.base_url + path, cookies=cookies, follow_redirects=False, timeout=30, **kw)


def console_post(server, path: str, key: str, data: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(server.base_url + path, cookies={"drover_console": server.keys[key]}, data=data, headers=headers,
                      follow_redirects=False, timeout=30)


def csrf_of(page: str) -> str:
    return re.search(r'<meta name="csrf" content="([^"]+)"', page).group(1)


def test_another_workspace_sees_none_of_it(console):
    server, deployment = console
    assert console_get(server, "/console/batches/batch_console_check", "beta").status_code == 404
    assert "batch_console_check" not in console_get(server, "/console/batches", "beta").text
    assert console_get(server, f"/console/deployments/{deployment.id}", "beta").status_code == 404
    session = server.client("default").beta.sessions.list(limit=1).data[0]
    assert console_get(server, f"/console/sessions/{session.id}", "beta").status_code == 404
    assert console_get(server, f"/console/sessions/{session.id}/tail", "beta").status_code == 404
    # Queues are every workspace's: another workspace sees counts, and may not change them.
    page = console_get(server, "/console/queues", "beta").text
    assert "Purge" not in page
    refused = console_post(server, "/console/queues/turns/pause", "beta", {"csrf": csrf_of(page)})
    assert refused.status_code == 403, refused.text


def test_no_key_no_console_and_a_bad_key_is_refused(console):
    server, _ = console
    answer = console_get(server, "/console/sessions?status=idle")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login?next=/console/sessions%3Fstatus%3Didle"
    assert console_post(server, "/console/deployments/x/pause", "default", {}).status_code == 403  # no token
    bad = httpx.post(server.base_url + "/console/login", data={"key": "sk-not-a-key"}, timeout=30)
    assert bad.status_code == 401 and "not an active API key" in bad.text
    good = httpx.post(server.base_url + "/console/login", data={"key": server.keys["default"], "next": "//evil.example/"},
                      follow_redirects=False, timeout=30)
    assert good.status_code == 303 and good.headers["location"] == "/console/batches"  # never off-site
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie


def test_state_changing_posts_need_the_pages_token_and_origin(console):
    """Cross-site request forgery: a form another site posts, with the user's cookie, changes nothing."""
    server, deployment = console
    client = server.client("default")
    path = f"/console/deployments/{deployment.id}/pause"
    page = console_get(server, f"/console/deployments/{deployment.id}", "default").text
    token = csrf_of(page)
    for data, headers in (({}, None), ({"csrf": "forged"}, None), ({"csrf": token}, {"origin": "https://evil.example"}),
                          ({"csrf": token}, {"sec-fetch-site": "cross-site"})):
        answer = console_post(server, path, "default", data, headers)
        assert answer.status_code == 403, (data, headers, answer.status_code)
        assert client.beta.deployments.retrieve(deployment.id).status == "active"
    # Another workspace's token does not pass for this one.
    other = csrf_of(console_get(server, "/console/batches", "beta").text)
    assert console_post(server, path, "default", {"csrf": other}).status_code == 403
    done = console_post(server, path, "default", {"csrf": token}, {"origin": server.base_url})
    assert done.status_code == 303 and client.beta.deployments.retrieve(deployment.id).status == "paused"
    client.beta.deployments.unpause(deployment.id)


def test_pages_forbid_inline_script_and_framing(console):
    server, _ = console
    answer = console_get(server, "/console/batches", "default")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"


def test_local_mode_answers_only_loopback_host_names():
    """DNS rebinding: with no keys, a page on another site whose name re-resolves to 127.0.0.1
    would reach the keyless API and console from the user's own browser. Its requests carry
    that site's name in `Host`, and are refused; the console's forms still need their token."""
    import signal

    with tempfile.TemporaryDirectory(prefix="drover-console-local-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, DROVER_DATA_DIR=str(tmp / "data"))
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DROVER_REDIS_URL"):
            env.pop(name, None)
        port, log = free_port(), tmp / "serve.log"
        serve = subprocess.Popen([str(DROVER), "serve", "--address", f"127.0.0.1:{port}", "--no-scheduler", "--hands", "in-process"],
                                 stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/health", serve, log)
            beta = {"anthropic-beta": "managed-agents-2026-04-01"}
            for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
                assert httpx.get(base + "/v1/agents", headers={**beta, "host": host}, timeout=30).status_code == 200
                assert httpx.get(base + "/console/batches", headers={"host": host}, timeout=30).status_code == 200
            for host in (f"rebind.example:{port}", f"127.0.0.1.rebind.example:{port}", "evil.example"):
                api = httpx.get(base + "/v1/agents", headers={**beta, "host": host}, timeout=30)
                assert api.status_code == 403 and "localhost, 127.0.0.1 or [::1]" in api.json()["error"]["message"], api.text
                assert httpx.get(base + "/console/batches", headers={"host": host}, timeout=30).status_code == 403
            page = httpx.get(base + "/console/queues", timeout=30).text
            assert "Sign out" not in page  # local mode: nobody signs in
            assert httpx.post(base + "/console/queues/console-local/pause", data={}, timeout=30).status_code == 403
            done = httpx.post(base + "/console/queues/console-local/pause", data={"csrf": csrf_of(page)}, timeout=30)
            assert done.status_code == 303 and "Paused" in httpx.get(base + done.headers["location"], timeout=30).text
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)


def test_sessions_list_on_the_command_line_filters_as_the_console_does(console):
    server, _ = console
    listed = {s.id for s in server.client("default").beta.sessions.list(limit=100).data
              if (s.metadata or {}).get("drover_batch") == "batch_console_check"}

    def ids(*args):
        return {row["id"] for row in json.loads(server.drover("sessions", "list", "--json", *args))}

    assert ids("--batch", "batch_console_check") == listed
    assert ids("--batch", "batch_console_check", "--status", "idle", "--workspace", "default") == listed
    assert ids("--batch", "batch_console_check", "--workspace", "beta") == set()
    assert ids("--batch", "batch_console_check", "--since", "2999-01-01") == set()
    first, rest = ids("--batch", "batch_console_check", "--limit", "1"), ids("--batch", "batch_console_check", "--offset", "1")
    assert len(first) == 1 and first | rest == listed and not first & rest
    bad = subprocess.run([str(DROVER), "sessions", "list", "--status", "sleeping"], capture_output=True, text=True, timeout=30,
                         env=server.env())
    assert bad.returncode != 0 and "--status: 'sleeping' is not running, idle" in bad.stderr


def test_a_coordinators_threads_are_lanes_of_one_timeline(browser):
    from test_threads import make_coordinator, message, run_until_idle, script
    with sandboxed_server("drover-console-threads-", script(), hands="in-process") as server:
        client = server.client()
        environment = client.beta.environments.create(name="library", config={"type": "cloud"})
        _, _, coordinator = make_coordinator(client)
        session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
        run_until_idle(client, session.id, message("Review the literature."))
        threads = list(client.beta.sessions.threads.list(session.id))

        sign_in(browser, server, "alpha")
        browser.get(f"{server.base_url}/console/sessions/{session.id}")
        wait_until(lambda: browser.find_elements(By.ID, "lanes"), "the threads' lanes")
        lanes = browser.find_elements(By.CSS_SELECTOR, "#lanes th.lane")
        # One lane per thread, the coordinator's first, in the order the API lists them.
        assert [lane.get_attribute("data-thread") for lane in lanes] == [t.id for t in threads]
        assert [lane.text.split("\n")[0] for lane in lanes] == ["coordinator", "searcher", "searcher", "extractor"]
        rows = browser.find_elements(By.CSS_SELECTOR, "#lanes tbody tr")
        # Every event of every thread is one row, in the lane of its thread.
        total = sum(len(list(client.beta.sessions.threads.events.list(t.id, session_id=session.id, limit=1000))) for t in threads)
        assert len(rows) == total
        column = {}
        for row in rows:
            cells = row.find_elements(By.TAG_NAME, "td")[1:]
            filled = [i for i, cell in enumerate(cells) if cell.find_elements(By.CSS_SELECTOR, ".entry")]
            assert len(filled) == 1
            entry = cells[filled[0]].find_element(By.CSS_SELECTOR, ".entry")
            column.setdefault(entry.get_attribute("data-type"), set()).add(filled[0])
        # The coordinator starts threads; the searchers run the echo tool; replies come back to lane 0.
        assert column["session.thread_created"] == {0}
        assert column["agent.tool_use"] == {0, 1, 2}
        assert column["agent.thread_message_received"] == {0, 1, 2, 3}
        assert "thread started: searcher" in browser.find_element(By.ID, "lanes").text
        browser.execute_script("document.getElementById('lanes').scrollIntoView()")
        shot(browser, "session-threads")
