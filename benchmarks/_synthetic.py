"""Benchmark-only data: a synthetic corpus replicated from a real one (never used to train a
model that is evaluated). The benchmark scripts import it from here."""
from __future__ import annotations

import random

from toolalpaca_utils.training import EmptyCorpusError


def synthetic_corpus(records: dict | list, instances: list[dict], n: int, *, n_tools: int | None = None,
                     seed: int = 0) -> tuple[dict, list[dict]]:
    """``n`` instances made from ``instances``, for benchmarks and budget estimates only (never to
    train a model that is evaluated), and the tool records they use. Each copy takes a random
    source instance and keeps a random number (at least one) of its steps before the final
    answer, so lengths vary as in a corpus of 1- to 3-step conversations. With ``n_tools`` the
    copies are spread over that many renamed clones of the source tools (``Name`` gets a ``#k``
    suffix, so each clone has its own system prompt), as a corpus of that many tools would be."""
    by_name = records if isinstance(records, dict) else {r["Name"]: r for r in records}
    rng = random.Random(seed)
    sources = [i for i in instances if i.get("steps") and i.get("final") and i.get("tool") in by_name]
    if not sources:
        raise EmptyCorpusError("no instance with steps and a final answer to replicate")
    out_records: dict[str, dict] = {} if n_tools else dict(by_name)
    by_tool: dict[str, list[dict]] = {}
    for inst in sources:
        by_tool.setdefault(inst["tool"], []).append(inst)
    tools = sorted(by_tool)
    out = []
    for k in range(n):
        if n_tools:  # clone j always copies the same source tool
            j = k % n_tools
            src = rng.choice(by_tool[tools[j % len(tools)]])
            tool = f"{src['tool']}#{j}"
            out_records.setdefault(tool, {**by_name[src["tool"]], "Name": tool})
        else:
            src = rng.choice(sources)
            tool = src["tool"]
        keep = rng.randint(1, len(src["steps"]))
        out.append({**src, "id": f"{src.get('id')}-syn{k:04d}", "tool": tool, "steps": list(src["steps"][:keep])})
    return out_records, out
