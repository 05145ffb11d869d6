"""Runs tests.py against one submission and prints one JSON line per test, as each finishes,
so that the grader knows how far a submission got if it has to be stopped."""
import contextlib
import importlib.util
import io
import json
import os
import sys
import traceback

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import tests  # noqa: E402


def emit(record):
    sys.__stdout__.write(json.dumps(record) + "\n")
    sys.__stdout__.flush()


def main(submission):
    captured = io.StringIO()
    path = os.path.join(submission, "wordstats.py")
    try:
        spec = importlib.util.spec_from_file_location("wordstats", path)
        module = importlib.util.module_from_spec(spec)
        with contextlib.redirect_stdout(captured):
            spec.loader.exec_module(module)
    except BaseException as error:  # a submission that does not even import
        emit({"kind": "import_error", "error": f"{type(error).__name__}: {error}"[:300], "printed": captured.getvalue()[-2000:]})
        return
    for name in sorted(n for n in dir(tests) if n.startswith("test_")):
        try:
            with contextlib.redirect_stdout(captured):
                getattr(tests, name)(module)
            emit({"kind": "test", "name": name, "ok": True})
        except BaseException as error:
            detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            emit({"kind": "test", "name": name, "ok": False, "error": detail[:200]})
    emit({"kind": "done", "printed": captured.getvalue()[-2000:]})


if __name__ == "__main__":
    main(sys.argv[1])
