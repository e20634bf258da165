"""Groups MQTT telemetry into batches for the ingest core, and holds them while the database is away.

Each message's handler awaits the outcome of its own sample; the handler
returns (and gmqtt sends the PUBACK) only after the batch holding it is
committed. While the database is unreachable a batch is retried, with
backoff, for as long as it takes: nothing is acknowledged, so the broker
keeps the rest queued for us, and a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import logging

from ..store import DatabaseUnavailable, until_available
from .ingest import IngestCore, Sample

log = logging.getLogger(__name__)


class Batcher:
    def __init__(
        self,
        core: IngestCore,
        *,
        max_batch: int = 1000,
        linger_s: float = 0.005,
        workers: int = 2,
        retry_max_s: float = 5.0,
    ) -> None:
        self.core = core
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.workers = workers
        self.retry_max_s = retry_max_s
        self.queue: asyncio.Queue[tuple[Sample, asyncio.Future]] = asyncio.Queue()
        self.waiting_for_db = False
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"ingest-batch-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self.queue.empty():
            _, fut = self.queue.get_nowait()
            fut.cancel()

    async def submit(self, sample: Sample) -> str:
        """Queue one sample; return its outcome once its batch is stored."""
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((sample, fut))
        return await fut

    async def _take(self) -> list[tuple[Sample, asyncio.Future]]:
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        while len(batch) < self.max_batch:
            if self.queue.empty():
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            else:
                batch.append(self.queue.get_nowait())
        return batch

    async def _work(self) -> None:
        while True:
            batch = await self._take()
            live = [(s, f) for s, f in batch if not f.done()]
            if not live:
                continue
            try:
                outcomes = await self._store([s for s, _ in live])
            except asyncio.CancelledError:
                for _, f in live:
                    f.cancel()
                raise
            except Exception:  # a bug, not an outage: find the sample(s) it is about, keep the rest
                log.exception("ingest batch of %d failed; storing its samples one by one", len(live))
                await self._one_by_one(live)
                continue
            for (_, f), outcome in zip(live, outcomes):
                if not f.done():
                    f.set_result(outcome)

    async def _one_by_one(self, live: list[tuple[Sample, asyncio.Future]]) -> None:
        for sample, fut in live:
            try:
                [outcome] = await self._store([sample])
            except Exception as e:
                if not fut.done():
                    fut.set_exception(e)
            else:
                if not fut.done():
                    fut.set_result(outcome)

    async def _store(self, samples: list[Sample]) -> list[str]:
        def held(e: DatabaseUnavailable) -> None:
            if not self.waiting_for_db:
                log.error("database unavailable (%s); holding %d sample(s) unacknowledged", e, len(samples))
                self.waiting_for_db = True

        result = await until_available(lambda: self.core.ingest(samples), max_delay_s=self.retry_max_s, on_wait=held)
        if self.waiting_for_db:
            log.warning("database reachable again; ingest resumes")
            self.waiting_for_db = False
        return result.outcomes
