"""Few-shot intent labels: an account's labels each have a few example messages; a message gets
the labels whose examples are nearest in embedding space, above a confidence threshold.

A label's score is the mean cosine similarity of the message to its ``NEIGHBOURS`` nearest
examples (one example alone is noisy, a label's mean over all its examples blurs it); measured on
Banking77 in bench/ai (BENCHMARKS.md, AI).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ai.minilm import Vectors
from hub.events.types import IntentGuess

NEIGHBOURS = 2
#: at most this many labels are suggested for one message
TOP = 3


class IntentSet:
    """One account's labels with their examples' vectors (rows of ``vectors``)."""

    def __init__(self, labels: Sequence[str], example_labels: Sequence[int], vectors: Vectors):
        self.labels = list(labels)
        self.example_labels = np.asarray(example_labels, dtype=np.int64)
        self.vectors = vectors

    def scores(self, queries: Vectors) -> Vectors:
        """(queries, labels) label scores."""
        sims = queries @ self.vectors.T
        out = np.full((len(queries), len(self.labels)), -1.0, np.float32)
        for j in range(len(self.labels)):
            cols = sims[:, self.example_labels == j]
            if cols.shape[1] == 0:
                continue
            k = min(NEIGHBOURS, cols.shape[1])
            top = -np.partition(-cols, k - 1, axis=1)[:, :k]
            out[:, j] = top.mean(axis=1)
        return out

    def classify(self, queries: Vectors, threshold: float) -> list[tuple[IntentGuess, ...]]:
        if not self.labels or len(queries) == 0:
            return [() for _ in range(len(queries))]
        scores = self.scores(queries)
        result: list[tuple[IntentGuess, ...]] = []
        for row in scores:
            order = np.argsort(-row)[:TOP]
            result.append(
                tuple(
                    IntentGuess(self.labels[j], round(float(row[j]), 3))
                    for j in order
                    if row[j] >= threshold
                )
            )
        return result
