"""`bench/peers/run.py`, the README's comparison with the Python Redis queues, at a size that runs
in seconds: every system must really process every task it was given, through its own workers,
on one redis-server, and the report must carry a figure for each."""
import json
import subprocess
import sys

from conftest import DROVER, ROOT

SYSTEMS = ["drover", "huey", "dramatiq", "arq", "celery", "rq"]


def test_peers_benchmark_runs_every_system_on_one_server(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "peers" / "run.py"), "--tasks", "60", "--workers", "2", "--rounds", "1",
         "--idle-samples", "3", "--drover", str(DROVER), "--log", str(tmp_path / "workers.log")],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stderr}\n{(tmp_path / 'workers.log').read_text() if (tmp_path / 'workers.log').exists() else ''}"
    report = json.loads(result.stdout)
    assert report["benchmark"] == "peers" and report["tasks"] == 60 and report["rounds"] == 1
    assert list(report["systems"]) == SYSTEMS
    for name, entry in report["systems"].items():
        assert entry["process_per_second"] > 0, name
        assert entry["idle_pickup_p50_ms"] > 0, name
        # Every queue costs Redis some commands per task beyond the one the runner subtracts.
        assert entry["commands_per_task"] > 1, name
        assert entry["semantics"], name
    assert set(report["drover_speedup"]) == set(SYSTEMS) - {"drover"}
    assert all(ratio > 0 for ratio in report["drover_speedup"].values())
