"""What every peer's no-op task does.

Every task counts itself with one INCR, so the runner knows when a batch is done without
asking each system in its own way; the runner takes that INCR out of the commands it reports.
A task given the time it was sent also pushes its pickup latency for the runner to read.
Each peer's task lives in a module of its own, so that its workers import only that peer.
"""

import os
import time

import redis as redis_py

URL = os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE = "peers:done"
LATENCY = "peers:latency"

_client = None


def record(sent):
    global _client
    started = time.time()
    if _client is None:
        _client = redis_py.Redis.from_url(URL)
    if sent is not None:
        _client.rpush(LATENCY, (started - sent) * 1000)
    _client.incr(DONE)
