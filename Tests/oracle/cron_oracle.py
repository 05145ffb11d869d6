"""Cron oracle: reads cases as JSON from argv[1], writes croniter's answers as JSON to argv[2].

Each case is {"expression", "timezone", "start" (epoch seconds), "count"}; each answer is the
list of the next `count` fire instants as epoch seconds, or {"error": message}.
"""
import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter


def answer(case):
    zone = ZoneInfo(case["timezone"])
    start = datetime.fromtimestamp(case["start"], zone)
    try:
        iterator = croniter(case["expression"], start)
        return [int(iterator.get_next(datetime).timestamp()) for _ in range(case["count"])]
    except Exception as error:  # the Swift side compares: both must reject the same inputs
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    with open(sys.argv[1]) as handle:
        cases = json.load(handle)
    with open(sys.argv[2], "w") as handle:
        json.dump([answer(case) for case in cases], handle)


if __name__ == "__main__":
    main()
