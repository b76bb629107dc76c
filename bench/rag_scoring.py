"""Brute-force retrieval cost: cosine over N stored chunk vectors with numpy, as ember.web.documents.retrieve
does it for each question (the vectors as they come from the database: one float32 blob per chunk).

    .venv/bin/python bench/rag_scoring.py [--chunks 10000] [--dims 576] [--repeat 20] [--sqlite]

576 is the width of the bundled smollm2:135m; 768 and 1024 are common embedding models' widths. Prints the
median time to join the blobs and score them, and the top-4 selection, in milliseconds. With --sqlite it also
stores the chunks in a fresh SQLite database and times reading them back (ember.db.documents.load_vectors).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ember.db.documents import StoredVectors
from ember.web.documents.retrieve import top_matches


def measure(chunks: int, dims: int, repeat: int) -> float:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((chunks, dims)).astype("<f4")
    vectors = StoredVectors(keys=[("d", i) for i in range(chunks)], blobs=[row.tobytes() for row in matrix],
                            dims=[dims] * chunks)
    question = rng.standard_normal(dims).astype(np.float32)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        top_matches(question, vectors, 4)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure_sqlite(chunks: int, dims: int, repeat: int) -> float:
    import tempfile
    from pathlib import Path

    from ember.db.database import Database
    from ember.db.documents import NewChunk, NewDocument, add_chunks, create_document, load_vectors
    from ember.db.users import create_user

    with tempfile.TemporaryDirectory() as home:
        db = Database.open(f"sqlite:///{Path(home) / 'bench.db'}")
        db.migrate()
        user = create_user(db, "bench", "password-for-bench", "user")
        document = create_document(db, user.id, NewDocument(name="b", media_type="text/plain", size=1, sha256="",
                                                             chunks_total=chunks, embed_model="m", collection="b"))
        rng = np.random.default_rng(7)
        for start in range(0, chunks, 500):
            add_chunks(db, document.id, [NewChunk(i, "x" * 800, rng.standard_normal(dims).astype("<f4").tobytes(),
                                                  dims) for i in range(start, min(start + 500, chunks))])
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            load_vectors(db, [document.id])
            times.append((time.perf_counter() - started) * 1000)
        db.engine.dispose()
        return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--dims", type=int, nargs="*", default=[576, 768, 1024])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true", help="also time reading the vectors from SQLite")
    args = parser.parse_args()
    for dims in args.dims:
        print(f"{args.chunks} chunks x {dims} dims: {measure(args.chunks, dims, args.repeat):.1f} ms median "
              "to score")
        if args.sqlite:
            print(f"{args.chunks} chunks x {dims} dims: {measure_sqlite(args.chunks, dims, 5):.1f} ms median "
                  "to read from SQLite")


if __name__ == "__main__":
    main()
