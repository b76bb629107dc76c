"""Brute-force retrieval cost: cosine over N stored chunk vectors with numpy, as ember.web.documents.retrieve
does it for each question (the vectors as they come from the database: one float32 blob per chunk).

    .venv/bin/python bench/rag_scoring.py [--chunks 10000] [--dims 576] [--repeat 20]

576 is the width of the bundled smollm2:135m; 768 and 1024 are common embedding models' widths. Prints the
median time to join the blobs and score them, and the top-4 selection, in milliseconds.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--dims", type=int, nargs="*", default=[576, 768, 1024])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for dims in args.dims:
        print(f"{args.chunks} chunks x {dims} dims: {measure(args.chunks, dims, args.repeat):.1f} ms median")


if __name__ == "__main__":
    main()
