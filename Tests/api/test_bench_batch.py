"""`drover bench batch` with a concurrency sweep, at a size that runs in seconds: every item of
every point succeeds, no point beats the model-bound ideal (so the scripted model's delay was
really waited out), and each point reports its own CPU, Redis work and memory peak."""
import json
import subprocess

from conftest import DROVER


def test_batch_benchmark_sweeps_concurrency_and_never_beats_the_model_bound():
    result = subprocess.run(
        [str(DROVER), "bench", "batch", "--items", "24", "--concurrency", "4,8", "--model-delay-ms", "40"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    points = report["sweep"]
    assert [p["concurrency"] for p in points] == [4, 8]
    for point in points:
        assert point["succeeded"] == point["items"] == 24, point
        assert point["ideal_items_per_second"] == point["concurrency"] * 1000 / 40, point
        assert 0 < point["items_per_second"] <= point["ideal_items_per_second"], point
        assert point["overhead_ms_per_item"]["p50"] >= 0, point
        assert point["cpu_ms_per_item"] > 0 and point["redis_commands_per_item"] > 0, point
        assert point["peak_rss_mb"] > 0 and point["peak_rss_is_this_run"] is True, point


def test_a_bad_concurrency_list_is_refused_naming_the_flag():
    result = subprocess.run([str(DROVER), "bench", "batch", "--concurrency", "16,x"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--concurrency" in result.stderr, result.stderr
