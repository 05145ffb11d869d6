"""A session shared as one HTML file, and replayed in a terminal: a long tool output and a Python
traceback keep their lines, long ones are cut with a count unless --full, the HTML opens with no
network and carries the raw events, and what an agent printed cannot become markup."""

import base64
import json
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import BASH_PLAYBOOK, DROVER, sandboxed_server

COMMAND = ("for i in $(seq 1 30); do echo line $i; done; echo '<script>alert(1)</script>'; "
           "python3 -c 'def f(): raise ValueError(\"boom\")\nf()'")


class Page(HTMLParser):
    """The parts of the page a test looks at: every element's tag and attributes, entries, text."""

    def __init__(self):
        super().__init__()
        self.tags, self.entries, self.details, self.jsonl = [], [], 0, []
        self._in_jsonl = False
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "li" and "entry" in attrs.get("class", ""):
            self.entries.append(attrs)
        if tag == "details":
            self.details += 1
        if tag == "pre" and attrs.get("class") == "jsonl":
            self._in_jsonl = True

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_jsonl = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_jsonl:
            self.jsonl.append(data)


@pytest.fixture(scope="module")
def finished():
    with sandboxed_server("drover-export-", BASH_PLAYBOOK) as server:
        client = server.client()
        agent = client.beta.agents.create(name="export", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
        environment = client.beta.environments.create(name="export")
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": COMMAND}]}])
        deadline = time.monotonic() + 120
        while client.beta.sessions.retrieve(session.id).status != "idle":
            assert time.monotonic() < deadline, "the session did not finish"
            time.sleep(0.1)
        yield server, session.id


def test_replay_shows_a_traceback_as_lines_and_cuts_long_output_unless_full(finished):
    server, session = finished
    replay = server.drover("sessions", "replay", session)
    lines = replay.splitlines()
    # The tool's output is a block of its own lines under the result, not one clipped line.
    assert any("bash failed (" in line and line.endswith("): line 1") for line in lines), replay
    assert any(line.strip() == "│ line 2" for line in lines), replay
    assert any(line.strip().startswith("│ … ") and "more lines (--full shows them)" in line for line in lines), replay
    full = server.drover("sessions", "replay", session, "--full")
    block = [line.strip() for line in full.splitlines() if line.strip().startswith("│ ")]
    assert "│ line 30" in block and "│ Traceback (most recent call last):" in block and "│ ValueError: boom" in block, full
    assert "--full shows them" not in full


def test_html_export_is_one_self_contained_file_with_the_timeline_and_the_raw_events(finished, tmp_path: Path):
    server, session = finished
    jsonl = server.drover("sessions", "export", session)
    events = [json.loads(line) for line in jsonl.splitlines()]
    target = tmp_path / "session.html"
    server.drover("sessions", "export", session, "--format", "html", "--output", str(target))
    html = target.read_text()
    page = Page()
    page.feed(html)
    # Nothing is fetched: no scripts, stylesheets, images or frames, and no address but the page's own.
    assert not [t for t, a in page.tags if t in ("script", "link", "img", "iframe", "object", "embed")], page.tags
    addresses = [v for _, a in page.tags for k, v in a.items() if k in ("src", "href") and v]
    assert all(v.startswith("#") or v.startswith("data:application/x-ndjson;base64,") for v in addresses), addresses
    # One entry per event, in order, with its wire type.
    assert [e["data-type"] for e in page.entries] == [e["type"] for e in events]
    assert session in "".join(page.text)
    # The long output is folded, and whole inside the fold; what the agent printed stays text.
    text = "".join(page.text)
    assert page.details >= 2 and "line 30" in text and "ValueError: boom" in text
    assert "<script>alert(1)</script>" in text and "<script>" not in html
    # The raw events ride along, twice: shown, and as a download.
    assert "".join(page.jsonl) == jsonl
    download = [v for v in addresses if v.startswith("data:")]
    assert base64.b64decode(download[0].split(",", 1)[1]).decode() == jsonl


def test_a_jsonl_export_to_a_file_streams_the_same_log_and_replaces_the_file_whole(finished, tmp_path: Path):
    server, session = finished
    jsonl = server.drover("sessions", "export", session)
    assert jsonl.endswith("\n") and jsonl.count("\n") >= 5
    target = tmp_path / "session.jsonl"
    target.write_text("an older export\n")
    server.drover("sessions", "export", session, "--output", str(target))
    assert target.read_text() == jsonl
    # Written beside the target and renamed: nothing partial is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.jsonl"]


def test_an_unknown_export_format_is_refused_naming_the_flag(finished):
    server, session = finished
    result = subprocess.run([str(DROVER), "sessions", "export", session, "--format", "pdf"], capture_output=True, text=True, timeout=30,
                            env={"DROVER_DATA_DIR": str(server.data_dir), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "--format" in result.stderr and "jsonl or html" in result.stderr, result.stderr
