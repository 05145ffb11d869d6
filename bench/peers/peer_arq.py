"""arq: asyncio workers that poll; the default poll delay is 500 ms, 10 ms here."""
from arq.connections import RedisSettings

from peer_common import URL, record


async def noop(ctx, sent=None):
    record(sent)


class Worker:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(URL)
    poll_delay = 0.01
