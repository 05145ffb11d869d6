"""Celery with acks_late: a task is acknowledged after it ran, so a dead worker's task comes back."""
from celery import Celery

from peer_common import URL, record

app = Celery("peers", broker=URL)
app.conf.update(task_acks_late=True, task_ignore_result=True, broker_connection_retry_on_startup=True)


@app.task(name="noop")
def noop(sent=None):
    record(sent)
