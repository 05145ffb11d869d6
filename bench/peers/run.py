"""Drover's task queue side by side with the Python Redis queues, on one redis-server.

    .venv/bin/python bench/peers/run.py [--tasks 20000] [--workers 4] [--rounds 3]

Each round runs every system in turn (the order rotates between rounds) against one
redis-server this script starts on loopback (AOF everysec, as Drover's embedded server):
queue --tasks no-op tasks, start --workers workers, and time from the first task done to the
last; then, with the workers idle, queue one task at a time and time enqueue to pickup. Redis'
work per task comes from INFO commandstats and INFO cpu read at the first and the last task.
Drover's figures come from `drover bench queue` against the same server: its claim_ack phase.

Prints one JSON document: per system the median of the rounds, and Drover's ratio to each.
Progress goes to standard error. Peers are installed into .venv by scripts/setup.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import redis as redis_py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

SEMANTICS = {
    "drover": "lease with a deadline and a fence epoch, at least once; dedupe, retries, dead letters",
    "huey": "pop is delete: at most once, a worker that dies loses its task",
    "dramatiq": "per-worker ack set; at least once, a dead worker's messages come back when its heartbeat lapses",
    "arq": "jobs with an in-progress key, at least once on retry; workers poll, every 10 ms here",
    "celery": "acks_late, at least once; visibility timeout of an hour by default",
    "rq": "a fork per job, job hashes and registries; a dead worker's jobs go to a failed registry",
}
DISTRIBUTIONS = {"huey": "huey", "dramatiq": "dramatiq", "arq": "arq", "celery": "celery", "rq": "rq"}


def log(message):
    print(f"peers: {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="drover-peers-")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory, "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis_py.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.client.ping()
                break
            except redis_py.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("peers: redis-server did not start")
                time.sleep(0.05)

    def reading(self):
        pipe = self.client.pipeline(transaction=False)
        pipe.info("commandstats")
        pipe.info("cpu")
        commandstats, cpu = pipe.execute()
        commands = sum(v["calls"] for k, v in commandstats.items() if k != "cmdstat_info")
        return commands, cpu["used_cpu_sys"] + cpu["used_cpu_user"]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


class Peer:
    """One Python queue: how to queue its task and how to start its workers."""

    def __init__(self, name, server, workers):
        self.name = name
        self.server = server
        self.workers = workers
        os.environ["PEERS_REDIS_URL"] = server.url
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        import importlib

        import peer_common

        self.common = peer_common
        self.module = importlib.import_module(f"peer_{name}")
        if name == "rq":
            from rq import Queue

            self.rq_queue = Queue("peers", connection=redis_py.Redis.from_url(server.url))
        if name == "arq":
            import asyncio

            from arq import create_pool

            self.loop = asyncio.new_event_loop()
            self.arq_pool = self.loop.run_until_complete(create_pool(self.module.Worker.redis_settings))

    def enqueue(self, sent=None):
        if self.name == "huey":
            self.module.noop(sent)
        elif self.name == "rq":
            self.rq_queue.enqueue(self.module.noop, sent)
        elif self.name == "arq":
            self.loop.run_until_complete(self.arq_pool.enqueue_job("noop", sent))
        elif self.name == "dramatiq":
            self.module.noop.send(sent)
        elif self.name == "celery":
            self.module.noop.delay(sent)

    def worker_commands(self):
        python = sys.executable
        w = str(self.workers)
        url = self.server.url
        if self.name == "huey":
            return [[python, "-m", "huey.bin.huey_consumer", "peer_huey.huey", "-w", w, "-k", "process", "-q"]]
        if self.name == "rq":
            return [[python, "-m", "rq.cli", "worker", "-u", url, "-q", "peers"] for _ in range(self.workers)]
        if self.name == "arq":
            return [[python, "-m", "arq", "peer_arq.Worker"] for _ in range(self.workers)]
        if self.name == "dramatiq":
            return [[python, "-m", "dramatiq", "peer_dramatiq", "-p", w, "-t", "1", "-Q", "peers"]]
        if self.name == "celery":
            return [[python, "-m", "celery", "-A", "peer_celery:app", "worker", "-c", w, "-P", "prefork",
                     "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "warning"]]
        raise ValueError(self.name)

    def close(self):
        if self.name == "arq":
            self.loop.run_until_complete(self.arq_pool.aclose())
            self.loop.close()


def start_workers(commands, logfile):
    environment = dict(os.environ, PYTHONPATH=str(HERE))
    return [subprocess.Popen(c, cwd=HERE, env=environment, stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL,
                             start_new_session=True) for c in commands]


def stop_workers(processes):
    for p in processes:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    for p in processes:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def run_peer(name, server, tasks, workers, idle_samples, logfile):
    client = server.client
    client.flushall()
    peer = Peer(name, server, workers)
    try:
        for _ in range(tasks):
            peer.enqueue()
        before = None
        polls = 0
        processes = start_workers(peer.worker_commands(), logfile)
        try:
            deadline = time.monotonic() + max(120, tasks / 20)
            while True:
                done = int(client.get(peer.common.DONE) or 0)
                polls += 1
                now = time.monotonic()
                if before is None and done > 0:
                    # The window starts at the first task done, so worker start-up is not in it.
                    before = (done, now, server.reading(), polls)
                if done >= tasks:
                    after = (done, now, server.reading(), polls)
                    break
                if now > deadline or any(p.poll() is not None for p in processes):
                    raise RuntimeError(f"{name}: {done} of {tasks} tasks done; see the worker log")
                time.sleep(0.005)
            processed = after[0] - before[0]
            seconds = after[1] - before[1]
            commands = after[2][0] - before[2][0] - (after[3] - before[3]) - processed
            cpu_us = (after[2][1] - before[2][1]) * 1e6
            # Idle pickup: the workers wait on an empty queue; one task at a time.
            latencies = []
            client.delete(peer.common.LATENCY)
            for _ in range(idle_samples):
                peer.enqueue(time.time())
                got = client.blpop(peer.common.LATENCY, timeout=10)
                if got is None:
                    raise RuntimeError(f"{name}: an idle task was not picked up in 10 s")
                latencies.append(float(got[1]))
                time.sleep(0.005)
        finally:
            stop_workers(processes)
    finally:
        peer.close()
    return {
        "process_per_second": processed / seconds,
        "idle_pickup_p50_ms": statistics.median(latencies),
        "commands_per_task": commands / processed,
        "redis_cpu_us_per_task": cpu_us / processed,
    }


def run_drover(drover, server, tasks, workers, idle_samples, logfile):
    environment = dict(os.environ, DROVER_REDIS_URL=server.url)
    result = subprocess.run(
        [drover, "bench", "queue", "--tasks", str(tasks), "--workers", str(workers), "--idle-samples", str(idle_samples),
         "--metrics", "off"], env=environment, stdout=subprocess.PIPE, stderr=logfile, stdin=subprocess.DEVNULL,
        timeout=900, check=True)
    report = json.loads(result.stdout)
    work = report["claim_ack"]["redis_work"]
    return {
        "process_per_second": report["claim_ack"]["per_second"],
        "idle_pickup_p50_ms": report["idle_claim_latency_ms"]["p50"],
        "commands_per_task": work["commands_per_task"],
        "redis_cpu_us_per_task": work["cpu_us_per_task"],
        "redis_set_per_second": report["redis_set"]["per_second"],
    }


def find_drover(given):
    if given:
        return given
    for candidate in [ROOT / ".build" / "release" / "drover", shutil.which("drover")]:
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SystemExit("peers: no drover binary; run scripts/setup, or pass --drover PATH")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-samples", type=int, default=100)
    parser.add_argument("--systems", default="drover,huey,dramatiq,arq,celery,rq")
    parser.add_argument("--drover", help="the drover binary (default: .build/release/drover, then PATH)")
    parser.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "drover-peers.log"),
                        help="where the workers' output goes")
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SEMANTICS]
    if unknown or args.tasks < 1 or args.workers < 1 or args.rounds < 1 or args.idle_samples < 1:
        parser.error(f"unknown systems {unknown}; known: {', '.join(SEMANTICS)}" if unknown else "counts must be at least 1")
    drover = find_drover(args.drover) if "drover" in systems else None

    server = RedisServer()
    runs = {s: [] for s in systems}
    try:
        with open(args.log, "a") as logfile:
            for round_index in range(args.rounds):
                order = systems[round_index % len(systems):] + systems[:round_index % len(systems)]
                for name in order:
                    log(f"round {round_index + 1}/{args.rounds}: {name}")
                    if name == "drover":
                        result = run_drover(drover, server, args.tasks, args.workers, args.idle_samples, logfile)
                    else:
                        result = run_peer(name, server, args.tasks, args.workers, args.idle_samples, logfile)
                    runs[name].append(result)
        version = server.client.info("server")["redis_version"]
    finally:
        server.stop()

    def median(name, field):
        values = [r[field] for r in runs[name] if r.get(field) is not None]
        return round(statistics.median(values), 3) if values else None

    report = {
        "benchmark": "peers",
        "redis_version": version,
        "cores": os.cpu_count(),
        "tasks": args.tasks,
        "workers": args.workers,
        "rounds": args.rounds,
        "systems": {},
    }
    for name in systems:
        report["systems"][name] = {
            "semantics": SEMANTICS[name],
            "version": metadata.version(DISTRIBUTIONS[name]) if name in DISTRIBUTIONS else None,
            "process_per_second": median(name, "process_per_second"),
            "process_per_second_runs": [round(r["process_per_second"], 1) for r in runs[name]],
            "idle_pickup_p50_ms": median(name, "idle_pickup_p50_ms"),
            "commands_per_task": median(name, "commands_per_task"),
            "redis_cpu_us_per_task": median(name, "redis_cpu_us_per_task"),
        }
    if "drover" in systems:
        report["redis_benchmark_set_c_workers_per_second"] = median("drover", "redis_set_per_second")
        ours = report["systems"]["drover"]["process_per_second"]
        report["drover_speedup"] = {
            name: round(ours / entry["process_per_second"], 2)
            for name, entry in report["systems"].items() if name != "drover" and entry["process_per_second"]
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
