"""The anthropic SDK's own EnvironmentWorker, unchanged, serving one Drover self-hosted environment.

Run by test_selfhosted.py as `python selfhosted_worker.py BASE_URL ENVIRONMENT_ID WORKDIR` with
the environment key in DROVER_TEST_ENVIRONMENT_KEY (never on a command line). The parent
client's API key is a dud: every call the worker makes must be carried by the environment key.
"""

import os
import sys
import asyncio
import logging

from anthropic import AsyncAnthropic
from anthropic.lib.environments import EnvironmentWorker


async def main() -> None:
    base_url, environment_id, workdir = sys.argv[1:4]
    client = AsyncAnthropic(base_url=base_url, api_key="not-a-key", max_retries=2)
    worker = EnvironmentWorker(
        client,
        environment_id=environment_id,
        environment_key=os.environ["DROVER_TEST_ENVIRONMENT_KEY"],
        workdir=workdir,
        max_idle=3,
        memory_sync_interval=None,
    )
    await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
