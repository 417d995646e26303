"""STE exploitation by in-context learning: retrieve distilled examples as demonstrations.

:class:`SentenceEmbedder` (all-MiniLM-L6-v2, offline) embeds the examples' requests,
:class:`DemoRetriever` returns the top-k most similar ones (cosine similarity), and
:class:`ICLModel` puts them into the system prompt of every request of any chat model
(:func:`format_demonstration`, :func:`icl_system_prompt`).
"""
from __future__ import annotations

from typing import Sequence

from ..embedding import SentenceEmbedder, minilm_dir  # noqa: F401  (the STE API names them)
from ..react import system_prompt
from .common import clip


class DemoRetriever:
    """The distilled examples indexed by their requests; :meth:`top_k` returns the most similar
    ones (cosine similarity), best first, optionally only of one tool."""

    def __init__(self, examples: Sequence[dict], embedder):
        self.examples = list(examples)
        self.embedder = embedder
        self.vectors = embedder.encode([e["instruction"] for e in self.examples])

    def top_k(self, query: str, k: int, *, tool: str | None = None) -> list[tuple[dict, float]]:
        import numpy as np

        idx = [i for i, e in enumerate(self.examples) if tool is None or e["tool"] == tool]
        if not idx or k <= 0:
            return []
        q = self.embedder.encode([query])[0]
        sims = self.vectors[idx] @ q
        order = np.argsort(-sims, kind="stable")[:k]
        return [(self.examples[idx[j]], float(sims[j])) for j in order]


DEMO_HEADER = "Examples of requests solved with this tool:"


def format_demonstration(example: dict, *, observation_chars: int = 200) -> str:
    """One distilled example as a worked ReAct conversation."""
    lines = [f"Request: {example['instruction']}"]
    for s in example["steps"]:
        lines += [s["text"], f"Observation: {clip(s['observation'], observation_chars)}"]
    if example.get("final"):
        lines.append(example["final"]["text"])
    return "\n".join(lines)


def icl_system_prompt(record: dict, demos: Sequence[dict], *, observation_chars: int = 200) -> str:
    """The shared tool prompt followed by the demonstrations."""
    base = system_prompt(record)
    if not demos:
        return base
    blocks = [f"Example {i}:\n" + format_demonstration(d, observation_chars=observation_chars)
              for i, d in enumerate(demos, 1)]
    return base + "\n\n" + DEMO_HEADER + "\n\n" + "\n\n".join(blocks)


class ICLModel:
    """Any chat model (``chat``, e.g. a served student) with retrieved
    demonstrations: the system turn of each request — the tool prompt that every episode
    starts with — is replaced by :func:`icl_system_prompt` with the top-``k`` examples for the
    request's instruction (the first user turn). Requests whose system turn is not a known tool
    prompt pass unchanged. ``evaluate`` runs it like any other model."""

    def __init__(self, model, retriever: DemoRetriever, records: dict[str, dict] | Sequence[dict], *, k: int = 4,
                 same_tool: bool = True, observation_chars: int = 200, name: str | None = None):
        self.model, self.retriever, self.k = model, retriever, k
        self.same_tool, self.observation_chars = same_tool, observation_chars
        recs = records.values() if isinstance(records, dict) else records
        self._tools = {system_prompt(r): r for r in recs}
        self._cache: dict[tuple[str, str], str] = {}
        self.name = name or f"{getattr(model, 'name', 'model')}+icl{k}"
        self.retrieved: dict[str, list[str]] = {}   # instruction -> ids of its demonstrations

    def rewrite(self, messages: Sequence[dict]) -> list[dict]:
        messages = [dict(m) for m in messages]
        if len(messages) < 2 or messages[0].get("role") != "system":
            return messages
        record = self._tools.get(messages[0]["content"])
        if record is None:
            return messages
        instruction = messages[1]["content"]
        key = (record["Name"], instruction)
        if key not in self._cache:
            hits = self.retriever.top_k(instruction, self.k, tool=record["Name"] if self.same_tool else None)
            demos = [ex for ex, _ in hits]
            self.retrieved[instruction] = [ex["id"] for ex in demos]
            self._cache[key] = icl_system_prompt(record, demos, observation_chars=self.observation_chars)
        messages[0]["content"] = self._cache[key]
        return messages

    def chat(self, messages, **kw):
        return self.model.chat(self.rewrite(messages), **kw)

    @property
    def parallelism(self) -> int:
        """Episodes that can run at once: the wrapped model's."""
        return getattr(self.model, "parallelism", 1)
