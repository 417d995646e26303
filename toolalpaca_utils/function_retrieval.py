"""Decoding "retrieved": a sentence embedder, not the student, picks the function of the first call.

Most of the fine-tuned student's misses on unseen tools are a sibling of the right function. Its
choice among siblings is hardly better than the untrained model's, on the unseen simulated tools
and on held-out requests of the tools it was trained on alike (``benchmarks/function_choice.py``,
2026-12-07, cpu adapter: right sibling 59.0 % held-out and 60.0 % unseen; the base model 48.7 and
60.0). all-MiniLM-L6-v2, comparing the request with each function's documentation line (the
thought constrained decoding binds to the call), picks 82.1 % and 100 % on the same requests.
Retrieval then decides which function is called, and the student writes its arguments and the
answer, as API retrievers do in front of ToolLLaMA. Rows decoded so say "retrieved": they measure
student and retriever together, next to the student alone ("grounded").
"""
from __future__ import annotations

import threading

from .agents.episode import call_thought
from .openapi import function_schemas, record_spec


class FunctionRetriever:
    """``choose(record, request)``: the function of ``record`` whose documentation line
    (:func:`~toolalpaca_utils.agents.episode.call_thought`) is most similar to ``request``
    (cosine similarity of sentence embeddings; the first function on a tie). One embedder serves
    every thread of an evaluation; a tool's lines are embedded once."""

    def __init__(self, embedder=None):
        if embedder is None:
            from .embedding import SentenceEmbedder

            embedder = SentenceEmbedder()
        self.embedder = embedder
        self._lock = threading.Lock()
        self._lines: dict[str, tuple[list[str], object]] = {}

    def choose(self, record: dict, request: str) -> str:
        names, vectors = self._tool(record)
        if len(names) == 1:
            return names[0]
        with self._lock:
            query = self.embedder.encode([request])[0]
        sims = vectors @ query
        return names[int(sims.argmax())]

    def _tool(self, record: dict) -> tuple[list[str], object]:
        key = f"{record['Name']}\n{record.get('Documentation', '')}"
        with self._lock:
            if key not in self._lines:
                names = list(function_schemas(record_spec(record)))
                if not names:
                    raise ValueError(f"tool {record['Name']!r} has no functions to choose from")
                self._lines[key] = (names, self.embedder.encode([call_thought(record, n) for n in names]))
            return self._lines[key]
