"""Cosine top-k over stored float32 blobs and the prompt text and citations built from the hits."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from ember.db.documents import Document, StoredVectors
from ember.web.documents.retrieve import Hit, compose, top_matches


def _stored(rows: list[list[float]], dims: list[int] | None = None) -> StoredVectors:
    return StoredVectors(keys=[("d", i) for i in range(len(rows))],
                         blobs=[np.asarray(r, dtype="<f4").tobytes() for r in rows],
                         dims=dims or [len(r) for r in rows])


def test_nearest_by_angle_not_length() -> None:
    vectors = _stored([[1, 0, 0], [0, 10, 0], [0.9, 0.1, 0], [-1, 0, 0], [0.5, 0.5, 0.5]])
    found = top_matches(np.array([2.0, 0, 0], dtype=np.float32), vectors, 3)
    assert [key for key, _ in found] == [("d", 0), ("d", 2), ("d", 4)]
    assert found[0][1] == 1.0 or abs(found[0][1] - 1.0) < 1e-6
    assert found[0][1] >= found[1][1] >= found[2][1]


def test_vectors_of_another_width_are_ignored_and_zero_vectors_do_not_crash() -> None:
    vectors = StoredVectors(keys=[("a", 0), ("b", 0), ("c", 0)],
                            blobs=[np.zeros(2, "<f4").tobytes(), np.ones(3, "<f4").tobytes(),
                                   np.ones(2, "<f4").tobytes()], dims=[2, 3, 2])
    found = top_matches(np.array([1.0, 1.0], dtype=np.float32), vectors, 4)
    assert [key for key, _ in found] == [("c", 0), ("a", 0)]
    assert top_matches(np.ones(5, dtype=np.float32), vectors, 4) == []


def test_compose_numbers_passages_and_cites_them() -> None:
    doc = Document(id="doc1", user_id=1, chat_id=None, collection="c", name="a.md", media_type="text/markdown",
                   size=1, sha256="", status="ready", error=None, chunks_total=9, chunks_done=9, embed_model="m",
                   created_at=datetime.now(UTC))
    retrieved = compose([(Hit(0.9, doc, 4), "Ferries leave hourly."), (Hit(0.5, doc, 0), "x " * 300)])
    assert "[1] (a.md, part 5) Ferries leave hourly." in retrieved.system_text
    assert "[2] (a.md, part 1)" in retrieved.system_text and "[1]" in retrieved.system_text.split("\n")[0]
    assert retrieved.citations[0] == {"n": 1, "document_id": "doc1", "name": "a.md", "ordinal": 4,
                                      "snippet": "Ferries leave hourly."}
    assert len(retrieved.citations[1]["snippet"]) <= 200 and retrieved.citations[1]["snippet"].endswith("…")
    assert compose([]).system_text == "" and compose([]).citations == []
