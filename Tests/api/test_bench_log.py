"""`drover bench log` at a size that runs in seconds: every appended event reaches SQLite, both
wakes return the whole session, and the streaming wake of the long session hands over every
event, from Redis and from SQLite alone, with a memory peak measured for that wake."""
import json
import subprocess

from conftest import DROVER


def test_log_benchmark_mirrors_every_event_and_wakes_the_long_session_streaming():
    result = subprocess.run(
        [str(DROVER), "bench", "log", "--events", "4000", "--sessions", "20", "--rate", "0", "--wake-events", "600",
         "--wake-runs", "2", "--stream-wake-events", "12000"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["benchmark"] == "log" and report["append"]["events"] == 4000
    assert report["mirror_lag_ms"]["samples"] >= 4000
    assert report["wake_ms"]["redis_median"] > 0 and report["wake_ms"]["sqlite_median"] > 0
    stream = report["stream_wake"]
    assert stream["events"] == 12000
    sizes = set()
    for wake in ["redis_streaming", "redis_whole", "sqlite_streaming"]:
        entry = stream[wake]
        assert entry["seconds"] > 0 and entry["peak_rss_mb"] > 0, (wake, entry)
        assert entry["peak_rss_growth_mb"] >= 0 and entry["peak_is_this_wake"] is True, (wake, entry)
        sizes.add(entry["event_megabytes"])
    # Each wake handed over the same bytes: the whole log, three times.
    assert len(sizes) == 1 and sizes.pop() > 1, stream
