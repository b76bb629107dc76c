"""What brute-force retrieval costs: loading a user's chunk vectors from the database and scoring them by
cosine with numpy, the way ember.web.documents.retrieve does for every question (no vector index).

    python bench/rag_search.py [--dims 576] [--sizes 1000,10000,50000] [--repeat 20] [--out bench/results]

576 is the width of smollm2:135m's vectors (the bundled model, the default embedding model). For each size the
run stores that many chunks (random unit vectors as float32 bytes, spread over documents of 200 chunks) in a
fresh SQLite database under a temporary directory, then measures, each as the median (and max) of
``--repeat`` calls after one warm-up:

- ``load``: ``ember.db.documents.load_vectors`` for all those documents (the SQL read of the blobs);
- ``score``: ``retrieve.top_matches`` on what was loaded (join the blobs, cosine, top 4);
- ``numpy only``: the cosine and top 4 on a matrix already in memory (the floor a cache would reach).

Writes bench/results/rag-search-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ember.db import documents as repo
from ember.db.database import Database
from ember.db.users import create_user
from ember.web.documents.retrieve import TOP_K, cosine_scores, top_matches

CHUNKS_PER_DOCUMENT = 200
BATCH = 500  # chunks per insert transaction while filling the database


def timed(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    call()  # warm-up: caches, first-use imports
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(samples), 3), "max_ms": round(max(samples), 3)}


def unit_vectors(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    matrix = rng.standard_normal((n, dims)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def fill(db: Database, user_id: int, vectors: np.ndarray) -> list[tuple[str, int]]:
    """Store ``vectors`` as the ready chunks of documents of CHUNKS_PER_DOCUMENT chunks; the (document id,
    ordinal) of each vector, in the order of ``vectors``."""
    keys: list[tuple[str, int]] = []
    dims = vectors.shape[1]
    for first in range(0, len(vectors), CHUNKS_PER_DOCUMENT):
        rows = vectors[first:first + CHUNKS_PER_DOCUMENT]
        document = repo.create_document(db, user_id, repo.NewDocument(
            name=f"doc-{first}.txt", media_type="text/plain", size=1, sha256="0" * 64, chunks_total=len(rows),
            embed_model="bench", collection="bench"))
        for start in range(0, len(rows), BATCH):
            batch = [repo.NewChunk(ordinal=start + i, text=f"passage {first + start + i}",
                                   embedding=row.astype("<f4").tobytes(), dims=dims)
                     for i, row in enumerate(rows[start:start + BATCH])]
            repo.add_chunks(db, document.id, batch)
        repo.mark_ready(db, document.id)
        keys += [(document.id, ordinal) for ordinal in range(len(rows))]
    return keys


def measure_size(n: int, dims: int, repeat: int, workdir: Path) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    vectors = unit_vectors(rng, n, dims)
    question = unit_vectors(rng, 1, dims)[0]
    db = Database.open(f"sqlite:///{workdir / f'rag-{n}.db'}")
    db.migrate()
    user = create_user(db, f"bench{n}", "bench-password-1")
    keys = fill(db, user.id, vectors)
    ids = list(dict.fromkeys(document_id for document_id, _ in keys))
    stored = repo.load_vectors(db, ids)
    best = top_matches(question, stored, TOP_K)
    expected = np.argsort(-(vectors @ question))[:TOP_K]
    assert [key for key, _ in best] == [keys[i] for i in expected], "top_matches disagrees with numpy"
    result = {
        "chunks": n, "documents": len(ids), "dims": dims,
        "load": timed(lambda: repo.load_vectors(db, ids), repeat),
        "score": timed(lambda: top_matches(question, stored, TOP_K), repeat),
        "numpy only": timed(lambda: np.argsort(-cosine_scores(question, vectors))[:TOP_K], repeat),
    }
    db.engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=576, help="vector width (smollm2:135m: 576)")
    parser.add_argument("--sizes", default="1000,10000,50000", help="chunk counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ember-rag-bench-") as tmp:
        results = [measure_size(n, args.dims, args.repeat, Path(tmp)) for n in sizes]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    meta = {"date": stamp, "repeat": args.repeat, "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "numpy": np.__version__, "database": "SQLite (file, WAL)"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rag-search-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results},
                                                                   indent=2) + "\n")
    lines = [f"# Brute-force retrieval ({stamp}, {args.dims} dims, median of {args.repeat}, {meta['cpus']} CPUs, "
             f"1-min load {meta['load_1min']})", "",
             "| chunks | load from SQLite | score (join + cosine + top 4) | numpy only |", "|---|---|---|---|"]
    lines += [f"| {r['chunks']:,} | {r['load']['median_ms']:.1f} ms | {r['score']['median_ms']:.1f} ms | "
              f"{r['numpy only']['median_ms']:.2f} ms |" for r in results]
    text = "\n".join(lines) + "\n"
    (args.out / f"rag-search-{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
