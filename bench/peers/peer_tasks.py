"""The no-op task of each peer queue, for its workers to import.

Every task counts itself with one INCR, so the runner knows when a batch is done without
asking each system in its own way; the runner takes that INCR out of the commands it reports.
A task given the time it was sent also pushes its pickup latency for the runner to read.
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


# huey: the consumer pops a task (BRPOP) and that is all; a worker that dies loses it.
from huey import RedisHuey  # noqa: E402

huey = RedisHuey("peers", url=URL, results=False)


@huey.task()
def huey_noop(sent=None):
    record(sent)


# RQ: each worker forks a child per job, and keeps job hashes and registries.
def rq_noop(sent=None):
    record(sent)


# arq: asyncio workers that poll; the default poll delay is 500 ms, 10 ms here.
from arq.connections import RedisSettings  # noqa: E402


async def arq_noop(ctx, sent=None):
    record(sent)


class ArqWorker:
    functions = [arq_noop]
    redis_settings = RedisSettings.from_dsn(URL)
    poll_delay = 0.01


# Dramatiq: messages move to a per-worker ack set and back on a dead worker's heartbeat.
# Its Prometheus middleware would open an exporter port per worker, so it is left out.
import dramatiq  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit  # noqa: E402

dramatiq.set_broker(
    RedisBroker(url=URL, middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()])
)


@dramatiq.actor(queue_name="peers", max_retries=0)
def dramatiq_noop(sent=None):
    record(sent)


# Celery with acks_late: a task is acknowledged after it ran, so a dead worker's task comes back.
from celery import Celery  # noqa: E402

celery_app = Celery("peers", broker=URL)
celery_app.conf.update(task_acks_late=True, task_ignore_result=True, broker_connection_retry_on_startup=True)


@celery_app.task(name="celery_noop")
def celery_noop(sent=None):
    record(sent)
