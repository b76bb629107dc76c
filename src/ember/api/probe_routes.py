"""The engine's probes: ``/healthz`` for liveness, ``/readyz`` for readiness (shape in ember.probes).

Liveness says only that the process runs and its event loop answers: restarting the pod would not help with
anything else. Readiness says the engine can take requests: the store is readable, preloads are done and the
scheduler's reaper (which drops dead runners so the next request loads a fresh one) is running. A loaded
model is not required: the first request loads it.
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from ember.api.services import Services, services
from ember.probes import HEALTHZ, READYZ, Check, Readiness

router = APIRouter()


@router.get(HEALTHZ)
async def healthz() -> JSONResponse:
    return _respond(Readiness((await event_loop_check(),)))


@router.get(READYZ)
async def readyz(request: Request) -> JSONResponse:
    found = services(request)
    checks = (await event_loop_check(), store_check(found), preload_check(found), supervisor_check(found))
    return _respond(Readiness(checks))


def _respond(readiness: Readiness) -> JSONResponse:
    return JSONResponse(readiness.to_json(), status_code=readiness.status_code,
                        headers={"cache-control": "no-store"})


async def event_loop_check() -> Check:
    # Answering at all proves the loop runs; the time for one yield shows how busy it is.
    started = time.perf_counter()
    await asyncio.sleep(0)
    return Check("event_loop", True, f"answered, one yield took {(time.perf_counter() - started) * 1000:.1f} ms")


def store_check(found: Services) -> Check:
    manifests = found.store.manifests_dir
    if not os.access(found.store.root, os.R_OK | os.X_OK):
        return Check("store", False, f"models directory {found.store.root} is not readable and traversable")
    try:
        os.listdir(manifests)
    except OSError as exc:
        return Check("store", False, f"cannot read {manifests}: {exc.strerror or exc}")
    return Check("store", True, f"{found.store.root} is readable")


def preload_check(found: Services) -> Check:
    wanted = len(found.settings.preload)
    if not found.preloaded:
        return Check("preload", False, f"{wanted} preload(s) not finished yet")
    return Check("preload", True, f"{wanted} preload(s) done" if wanted else "nothing to preload")


def supervisor_check(found: Services) -> Check:
    if not found.scheduler.supervising:
        return Check("runner_supervisor", False, "the scheduler's reaper is not running: dead runners are not replaced")
    return Check("runner_supervisor", True, f"reaper running, {len(found.scheduler.running())} model(s) loaded")
