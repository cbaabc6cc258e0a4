#!/usr/bin/env python3
"""The pgqueuer side of scripts/bench.sh: the same password-reset workload, run by pgqueuer.

Needs Python 3.11+ and a virtualenv with:  pgqueuer==1.6.0 asyncpg botocore aiohttp
(HTTP client: aiohttp. uvloop comes with pgqueuer itself, whose `pgq` CLI runs on it; so do we.)

    python peer_pgqueuer.py install --dsn DSN
        pgqueuer's own schema (what `pgq install` creates); skipped if already there.
    python peer_pgqueuer.py enqueue --dsn DSN --jobs 20000
        N jobs for entrypoint "reset" in ONE statement (pgqueuer's batch enqueue: list arguments),
        payload {"UserPoolId": "us-east-1_Bench1", "Username": "userN"}.
    python peer_pgqueuer.py work --dsn DSN --jobs 20000 --concurrency 16 --url http://127.0.0.1:PORT
        pgqueuer's consumer in drain mode (it returns once no job is queued and none runs).
        Each job POSTs its payload, SigV4-signed, as AdminResetUserPassword; a non-200 raises,
        so pgqueuer records the job as failed ('exception'). Prints one JSON line on stdout:
        {"jobs": done, "failed": failed, "seconds": first dequeue -> last completion recorded}.

How pgqueuer 1.6.0 is driven (its documented defaults unless said):
  - One asyncpg connection for the consumer: its performance guide says "Always use a direct
    asyncpg connection (not a pool) for the QueueManager" (LISTEN lives on it).
  - concurrency: @entrypoint("reset", concurrency_limit=16). pgqueuer enforces this in the
    dequeue SQL (a job holds one of 16 "slots" from pick until its status row is written).
    max_concurrent_tasks is left unset: it would have to be >= 2 x batch_size.
  - batch_size: 10, pgqueuer's default (dequeue round-trip size, and also the size at which the
    buffered completions are flushed). --batch-size changes it; with a limit of 16, more than
    16 cannot help.
  - Completion: a finished job goes to an in-process buffer, flushed every 0.1 s or at
    batch_size items, as one statement that DELETEs the rows and INSERTs pgqueuer_log rows.
    A job counts as done here when that flush has committed, as it does for pgqueuer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

import aiohttp
import asyncpg
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.domain.types import QueueExecutionMode
from pgqueuer.models import Context, Job
from pgqueuer.queries import Queries

ENTRYPOINT = "reset"
POOL_ID = "us-east-1_Bench1"
TARGET = "AWSCognitoIdentityProviderService.AdminResetUserPassword"
CREDENTIALS = Credentials("AKIDBENCH", "bench-secret")
SIGNER = SigV4Auth(CREDENTIALS, "cognito-idp", "us-east-1")


async def install(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        if await queries.schema_is_installed():
            print("pgqueuer schema already installed", file=sys.stderr)
        else:
            await queries.install()
    finally:
        await conn.close()


async def enqueue(dsn: str, jobs: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        payloads = [
            json.dumps({"UserPoolId": POOL_ID, "Username": f"user{n}"}).encode()
            for n in range(1, jobs + 1)
        ]
        # Lists = one batched INSERT ... SELECT FROM UNNEST(...) statement for all N jobs.
        await queries.enqueue([ENTRYPOINT] * jobs, payloads, [0] * jobs)
    finally:
        await conn.close()


class TimedQueries(Queries):
    """pgqueuer's own Queries, unchanged, plus the clock and counters the report needs."""

    first_dequeue: float | None = None  # when the first dequeue that got jobs was sent
    last_completion: float | None = None  # when the last completion flush committed
    done = 0
    failed = 0

    async def dequeue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        jobs = await super().dequeue(*args, **kwargs)
        if jobs and self.first_dequeue is None:
            self.first_dequeue = started
        return jobs

    async def log_jobs(self, job_status):  # type: ignore[no-untyped-def]
        await super().log_jobs(job_status)
        self.last_completion = time.perf_counter()
        self.done += len(job_status)
        # 'exception' (on_failure="delete", the default) or 'failed' (on_failure="hold").
        self.failed += sum(1 for _, status, _ in job_status if status in ("exception", "failed"))


async def work(dsn: str, jobs: int, concurrency: int, url: str, batch_size: int) -> int:
    conn = await asyncpg.connect(dsn)
    queries = TimedQueries(AsyncpgDriver(conn))
    # One HTTP session (keep-alive) for every job, handed over as a pgqueuer shared resource.
    # Its pool allows as many connections as jobs may run at once.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    pgq = PgQueuer(queries.driver, queries=queries, resources={"http": session})

    @pgq.entrypoint(ENTRYPOINT, concurrency_limit=concurrency)
    async def reset(job: Job, ctx: Context) -> None:
        body = job.payload or b""
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET},
        )
        SIGNER.add_auth(request)  # adds X-Amz-Date and Authorization (signs host + body too)
        http: aiohttp.ClientSession = ctx.resources["http"]  # type: ignore[assignment]
        async with http.post(url, data=body, headers=dict(request.headers.items())) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"AdminResetUserPassword answered HTTP {response.status}")

    try:
        # Drain mode = `pgq run --mode drain`: returns once nothing is queued and nothing runs,
        # after flushing the buffered completions. PgQueuer.run also starts its (idle) scheduler.
        await pgq.run(batch_size=batch_size, mode=QueueExecutionMode.drain)
    finally:
        await session.close()
    # The run must leave none of our jobs behind (pgqueuer deletes a job once its status is logged).
    remaining = await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = $1", ENTRYPOINT)
    await conn.close()

    seconds = (
        queries.last_completion - queries.first_dequeue
        if queries.first_dequeue is not None and queries.last_completion is not None
        else 0.0
    )
    print(json.dumps({"jobs": queries.done, "failed": queries.failed, "seconds": round(seconds, 3)}))
    if queries.done != jobs or remaining:
        print(f"expected {jobs} jobs done, got {queries.done}; {remaining} left in the queue", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "enqueue", "work"):
        p = sub.add_parser(name)
        p.add_argument("--dsn", required=True)
        if name != "install":
            p.add_argument("--jobs", type=int, required=True)
        if name == "work":
            p.add_argument("--concurrency", type=int, default=16)
            p.add_argument("--url", required=True)
            p.add_argument("--batch-size", type=int, default=10, help="pgqueuer's default: 10")
    args = parser.parse_args()
    # pgqueuer logs each failed job (with its traceback) at ERROR; show those on stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    try:
        import uvloop  # a dependency of pgqueuer; its CLI runs workers with uvloop.run
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    if args.command == "install":
        run(install(args.dsn))
        return 0
    if args.command == "enqueue":
        run(enqueue(args.dsn, args.jobs))
        return 0
    return run(work(args.dsn, args.jobs, args.concurrency, args.url, args.batch_size))


if __name__ == "__main__":
    sys.exit(main())
