"""huey: the consumer pops a task (BRPOP) and that is all; a worker that dies loses it."""
from huey import RedisHuey

from peer_common import URL, record

huey = RedisHuey("peers", url=URL, results=False)


@huey.task()
def noop(sent=None):
    record(sent)
