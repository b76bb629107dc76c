"""Retrieval for chat turns: the passages nearest to the question among the chat's documents and the named
documents and collections, as prompt text with numbered passages and the matching citations.

Vectors are scored by brute force: cosine similarity with numpy over every candidate chunk, loaded from the
database for each question. That is the documented alternative to sqlite-vec / pgvector (the PostgreSQL
server this runs against has no vector extension): one user's documents are thousands of chunks, which
numpy scores in milliseconds (bench/rag_scoring.py measures it). The question is embedded the same way as the
passages, through the pipeline as the user, once per embedding model among the candidates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np

from ember.db import documents as repo
from ember.db.documents import INDEXING, READY, Document
from ember.db.sessions import WebUser
from ember.errors import DocumentIndexing
from ember.web.documents.embed import embed_texts
from ember.web.services import Retrieved, WebUI

TOP_K = 4
SNIPPET_CHARS = 200
INSTRUCTION = ("Answer using the numbered passages below, taken from the user's documents. Cite each passage you "
               "use with its number in square brackets, like [1]. If the passages do not contain the answer, "
               "say so.")


@dataclass(frozen=True)
class Hit:
    score: float
    document: Document
    ordinal: int


class DocumentRetriever:
    """The chat turns' Retriever (ember.web.services): wired as ``WebUI.retriever`` by create_app."""

    def __init__(self, ui: WebUI, top_k: int = TOP_K) -> None:
        self.ui = ui
        self.top_k = top_k

    async def context(self, user: WebUser, chat_id: str, query: str, document_ids: list[str],
                      collections: list[str]) -> Retrieved:
        db = self.ui.database
        candidates = await anyio.to_thread.run_sync(repo.candidate_documents, db, user.user_id, chat_id,
                                                    document_ids, collections)
        for document in candidates:
            if document.status == INDEXING:
                raise DocumentIndexing(document.name)
        ready = [d for d in candidates if d.status == READY]  # failed ones have no chunks: skipped
        if not ready or not query.strip():
            return Retrieved("", [])
        hits = await self._nearest(user, query, ready)
        texts = await anyio.to_thread.run_sync(repo.chunk_texts, db, [(h.document.id, h.ordinal) for h in hits])
        return compose([(h, texts[(h.document.id, h.ordinal)]) for h in hits if (h.document.id, h.ordinal) in texts])

    async def _nearest(self, user: WebUser, query: str, ready: list[Document]) -> list[Hit]:
        by_model: dict[str, list[Document]] = defaultdict(list)
        for document in ready:
            by_model[document.embed_model or ""].append(document)
        hits: list[Hit] = []
        for model, documents in by_model.items():  # documents embedded by another model need their own query
            question = (await embed_texts(self.ui.gateway, user, model, [query]))[0]
            vectors = await anyio.to_thread.run_sync(repo.load_vectors, self.ui.database, [d.id for d in documents])
            by_id = {d.id: d for d in documents}
            for (document_id, ordinal), score in top_matches(question, vectors, self.top_k):
                hits.append(Hit(score, by_id[document_id], ordinal))
        hits.sort(key=lambda h: -h.score)
        return hits[:self.top_k]


def top_matches(question: np.ndarray, vectors: repo.StoredVectors, k: int) -> list[tuple[tuple[str, int], float]]:
    """The ``k`` stored chunks most similar to ``question`` by cosine, best first."""
    usable = [i for i, dims in enumerate(vectors.dims) if dims == question.shape[0]]
    if not usable:
        return []
    matrix = np.frombuffer(b"".join(vectors.blobs[i] for i in usable), dtype="<f4").reshape(len(usable), -1)
    scores = cosine_scores(question, matrix)
    if len(scores) > k:  # only the best k need sorting
        best = np.argpartition(-scores, k)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
    else:
        best = np.argsort(-scores, kind="stable")
    return [(vectors.keys[usable[i]], float(scores[i])) for i in best]


def cosine_scores(question: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix)) * float(np.linalg.norm(question))
    scores: np.ndarray = (matrix @ question.astype(np.float32)) / np.maximum(norms, 1e-12)
    return scores


def compose(found: list[tuple[Hit, str]]) -> Retrieved:
    """The prompt text with passages numbered [1]..[n] and the citation of each number."""
    if not found:
        return Retrieved("", [])
    passages: list[str] = []
    citations: list[dict[str, Any]] = []
    for n, (hit, text) in enumerate(found, start=1):
        passages.append(f"[{n}] ({hit.document.name}, part {hit.ordinal + 1}) {text}")
        citations.append({"n": n, "document_id": hit.document.id, "name": hit.document.name,
                          "ordinal": hit.ordinal, "snippet": _snippet(text)})
    return Retrieved(INSTRUCTION + "\n\n" + "\n\n".join(passages), citations)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS - 1].rstrip() + "…"
