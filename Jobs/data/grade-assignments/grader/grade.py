"""Grades one submission: runs its tests in a child process with a time limit, and prints one
JSON object with the score. Usage: python3 grader/grade.py SUBMISSION_DIR"""
import json
import os
import subprocess
import sys

TIME_LIMIT_SECONDS = 5
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import tests  # noqa: E402

total = len([n for n in dir(tests) if n.startswith("test_")])
submission = sys.argv[1] if len(sys.argv) > 1 else "submission"
verdict, notes, lines = "fail", "", []
try:
    run = subprocess.run([sys.executable, os.path.join(here, "run_tests.py"), submission],
                         capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS)
    lines = run.stdout.splitlines()
except subprocess.TimeoutExpired as expired:
    out = expired.stdout or b""
    lines = (out.decode() if isinstance(out, bytes) else out).splitlines()
    verdict = "timeout"
    notes = f"stopped after {TIME_LIMIT_SECONDS} s without finishing"

records = []
for line in lines:
    try:
        records.append(json.loads(line))
    except ValueError:
        pass
results = [r for r in records if r.get("kind") == "test"]
passed = sum(1 for r in results if r["ok"])
failed = [r["name"] + (": " + r["error"] if r.get("error") else "") for r in results if not r["ok"]]
if verdict == "timeout":
    done = {r["name"] for r in results}
    failed += [n + ": no result (timeout)" for n in sorted(n for n in dir(tests) if n.startswith("test_")) if n not in done]
for record in records:
    if record.get("kind") == "import_error":
        verdict, notes = "error", record["error"]
    if record.get("kind") == "done":
        verdict = "pass" if passed == total else "fail"
        notes = record.get("printed", "").strip()[:300]
print(json.dumps({
    "score": round(100 * passed / total), "passed": passed, "total": total,
    "verdict": verdict, "failed_tests": "; ".join(failed)[:500], "notes": notes,
}))
