"""Embeddings through the gateway's own pipeline, as the user: POST /api/embed in-process, so the user's
policy, limits and audit apply to indexing and to each question's search exactly as to their own requests.
No model runs in the web process."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ember.db.app_settings import get_setting
from ember.db.database import Database
from ember.db.sessions import WebUser
from ember.errors import UpstreamFailed
from ember.gateway import routes_table as table
from ember.gateway.auth import Principal
from ember.gateway.pipeline import Call
from ember.gateway.proxy import RelayResponse
from ember.gateway.services import Gateway
from ember.web.inprocess import error_text, internal_request, read_all

EMBED_MODEL_KEY = "embed_model"  # app_settings: the admin's choice
MAX_ANSWER_BYTES = 64 << 20  # a batch of 16 vectors of 4096 dimensions is ~1.5 MB of JSON


def embed_model(db: Database, default: str) -> str:
    """The model documents are embedded with: the admin's choice, else ``default`` (the bundled model)."""
    chosen = get_setting(db, EMBED_MODEL_KEY, None)
    return chosen if isinstance(chosen, str) and chosen.strip() else default


async def embed_texts(gateway: Gateway, user: WebUser, model: str, texts: list[str],
                      client: str | None = None) -> np.ndarray:
    """One float32 row per text. A refusal or failure of the pipeline is UpstreamFailed naming the reason."""

    async def forward(call: Call) -> RelayResponse:
        return await gateway.pipeline.forward(call)

    request = internal_request("/api/embed", {"model": model, "input": texts, "truncate": True}, client)
    response = await gateway.pipeline.handle(request, table.FORWARDED["/api/embed"], forward,
                                             principal=Principal(key=None, user=user))
    raw = await read_all(response, MAX_ANSWER_BYTES)
    if response.status_code != 200:
        raise UpstreamFailed(f"embedding with {model!r} failed: {error_text(raw, response.status_code)}")
    return _vectors(raw, model, len(texts))


def _vectors(raw: bytes, model: str, expected: int) -> np.ndarray:
    try:
        answer: Any = json.loads(raw)
        vectors = np.asarray(answer["embeddings"], dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamFailed(f"embedding with {model!r} gave an unreadable answer") from exc
    if vectors.ndim != 2 or vectors.shape[0] != expected or vectors.shape[1] == 0:
        raise UpstreamFailed(f"embedding with {model!r} gave {vectors.shape[0] if vectors.ndim else 0} "
                             f"vectors for {expected} texts")
    return vectors
