"""Dramatiq: messages move to a per-worker ack set, and back when a dead worker's heartbeat
lapses. Its Prometheus middleware would open an exporter port per worker, so it is left out."""
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from peer_common import URL, record

dramatiq.set_broker(
    RedisBroker(url=URL, middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()])
)


@dramatiq.actor(queue_name="peers", max_retries=0)
def noop(sent=None):
    record(sent)
