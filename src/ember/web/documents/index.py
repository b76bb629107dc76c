"""Indexing in the background: the upload has been parsed and chunked; its passages are embedded batch by
batch (each batch stored and counted, so progress shows) through the pipeline as the uploading user.

Tasks are tracked so shutdown can cancel them; a cancelled or failed document is marked failed and keeps no
chunk. At most ``concurrency`` documents are embedded at once per process; the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import anyio.to_thread
import numpy as np

from ember.db.database import Database
from ember.db.documents import NewChunk, add_chunks, fail_unfinished, mark_failed, mark_ready
from ember.db.sessions import WebUser
from ember.db.tables import utcnow
from ember.errors import EmberError
from ember.gateway.services import Gateway
from ember.web.documents.embed import embed_texts

log = logging.getLogger(__name__)
BATCH = 8  # passages per /api/embed request: progress moves often, requests stay small
STALE_AFTER = timedelta(minutes=30)  # an upload still indexing this long after a restart lost its indexer


@dataclass(frozen=True)
class Job:
    document_id: str
    user: WebUser
    model: str
    passages: list[str]
    client: str | None


class Indexer:
    def __init__(self, database: Database, gateway: Gateway, concurrency: int = 2) -> None:
        self.database = database
        self.gateway = gateway
        self._turns = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Job) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"index {job.document_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel the indexing in progress (its documents end failed, without chunks) and wait for it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def forget_interrupted(self) -> None:
        """At start: uploads whose indexer died with an earlier process can never finish; say so."""
        older = utcnow() - STALE_AFTER
        count = await anyio.to_thread.run_sync(fail_unfinished, self.database, older,
                                               "indexing was interrupted (the server stopped); upload it again")
        if count:
            log.info("marked %d interrupted document(s) failed", count)

    async def _run(self, job: Job) -> None:
        try:
            async with self._turns:
                for start in range(0, len(job.passages), BATCH):
                    if not await self._batch(job, start):
                        return  # deleted while indexing: nothing more to do
            await anyio.to_thread.run_sync(mark_ready, self.database, job.document_id)
        except asyncio.CancelledError:
            await self._fail(job, "indexing was interrupted (the server stopped); upload it again")
            raise
        except EmberError as exc:
            await self._fail(job, exc.message)
        except Exception as exc:  # a background task has nobody else to report to
            log.exception("indexing document %s failed", job.document_id)
            await self._fail(job, f"indexing failed: {type(exc).__name__}")

    async def _batch(self, job: Job, start: int) -> bool:
        texts = job.passages[start:start + BATCH]
        vectors = await embed_texts(self.gateway, job.user, job.model, texts, job.client)
        chunks = [NewChunk(ordinal=start + i, text=text, embedding=_blob(vector), dims=int(vector.shape[0]))
                  for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))]
        stored: bool = await anyio.to_thread.run_sync(add_chunks, self.database, job.document_id, chunks)
        return stored

    async def _fail(self, job: Job, reason: str) -> None:
        with anyio.CancelScope(shield=True):  # record it even while being cancelled
            await anyio.to_thread.run_sync(mark_failed, self.database, job.document_id, reason)


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()
