"""STE measurements: exploration statistics, query diversity and the evaluation metrics.

:func:`exploration_stats` and :func:`diversity_table` describe what exploration produced (per
tool and per ablation condition). :func:`ste_scores` gives STE's three deterministic metrics, read
from :func:`toolalpaca_utils.evaluation.score` — *well-formed* = ``well_formed``, *API match* =
``api_match``, *correct* = ``process_correct`` (the gold call made with every gold argument) — on
the single-call real-tool items of :func:`ste_eval_items`, with every evaluated model capped alike
(:class:`TokenCap`).
"""
from __future__ import annotations

from typing import Sequence

from ..agents import normalise
from ..react import GET_DETAILS
from .common import YES_NO


#: STE's metric -> the field of :func:`toolalpaca_utils.evaluation.score` it is read from
STE_METRICS = {"well_formed": "well_formed", "api_match": "api_match", "correct": "process_correct"}


def exploration_stats(rows: Sequence[dict]):
    """Per tool (and TOTAL): trials, usable requests, trials with a 2xx call, with a final answer,
    solved by execution (final answer after a 2xx call), reflected Yes, agreement of the
    reflection with execution, and the distinct functions called successfully."""
    import pandas as pd

    def one(rs: list[dict]) -> dict:
        n = len(rs)
        reflected = [r for r in rs if r.get("reflection") in YES_NO]
        ok_fns = {s["action"] for r in rs for s in r.get("steps") or []
                  if s.get("action") and s.get("status") and 200 <= s["status"] < 300 and s["action"] != GET_DETAILS}
        pct = lambda k: round(100 * k / n, 1) if n else 0.0  # noqa: E731
        return {
            "trials": n,
            "usable requests": sum(1 for r in rs if r.get("query") and not r.get("query_problems")),
            "2xx call %": pct(sum(1 for r in rs if r.get("n_ok_calls"))),
            "final answer %": pct(sum(1 for r in rs if r.get("final"))),
            "solved by execution %": pct(sum(1 for r in rs if r.get("solved_by_execution"))),
            "reflected Yes %": pct(sum(1 for r in rs if r.get("reflection") == "Yes")),
            "reflection agrees %": (round(100 * sum((r["reflection"] == "Yes") == bool(r.get("solved_by_execution"))
                                                    for r in reflected) / len(reflected), 1) if reflected else None),
            "functions called OK": len(ok_fns),
            "tokens": sum((r.get("tokens") or {}).get("completion", 0) for r in rs),
        }

    tools = sorted({r["tool"] for r in rows})
    table = [{"tool": t, **one([r for r in rows if r["tool"] == t])} for t in tools]
    table.append({"tool": "TOTAL", **one(list(rows))})
    return pd.DataFrame(table).set_index("tool")


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the normalised texts (0 when there are none)."""
    grams = []
    for t in texts:
        w = normalise(t).split()
        grams += [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def query_diversity(queries: Sequence[str], embedder=None) -> dict:
    """Diversity of a set of requests: mean pairwise cosine distance of their sentence embeddings
    (when an embedder is given) and distinct 1-/2-grams."""
    queries = [q for q in queries if q]
    out = {"n": len(queries), "distinct_1": round(distinct_n(queries, 1), 3),
           "distinct_2": round(distinct_n(queries, 2), 3)}
    if embedder is not None:
        if len(queries) >= 2:
            import numpy as np

            v = embedder.encode(queries)
            sim = v @ v.T
            iu = np.triu_indices(len(queries), 1)
            out["mean_pairwise_distance"] = round(float(np.mean(1.0 - sim[iu])), 4)
        else:
            out["mean_pairwise_distance"] = None
    return out


def diversity_table(rows_by_condition: dict[str, Sequence[dict]], embedder=None, tools: Sequence[str] | None = None):
    """Query diversity per condition and tool (and the mean over tools), on the tools every
    condition explored (or ``tools``)."""
    import pandas as pd

    sets = [{r["tool"] for r in rows} for rows in rows_by_condition.values()]
    common = sorted(set.intersection(*sets)) if sets else []
    tools = [t for t in (tools or common) if t in common]
    out = []
    for cond, rows in rows_by_condition.items():
        per = []
        for t in tools:
            d = query_diversity([r["query"] for r in rows if r["tool"] == t], embedder)
            per.append(d)
            out.append({"condition": cond, "tool": t, **d})
        if per:
            mean = {k: round(float(sum(p[k] for p in per if p.get(k) is not None) /
                                   max(1, sum(1 for p in per if p.get(k) is not None))), 4)
                    for k in per[0] if k != "n"}
            out.append({"condition": cond, "tool": "MEAN", "n": sum(p["n"] for p in per), **mean})
    return pd.DataFrame(out)


def ste_scores(run) -> dict:
    """STE's metrics (% of all items) of an :class:`~toolalpaca_utils.evaluation.EvalRun`."""
    n = len(run.rows)
    out = {"model": run.name, "n": n}
    for ste, field_name in STE_METRICS.items():
        out[ste] = round(100 * sum(bool(r["metrics"][field_name]) for r in run.rows) / n, 1) if n else 0.0
    return out


def correct_by_tool(run) -> dict[str, tuple[int, int]]:
    """tool -> (correct, n) of an EvalRun."""
    out: dict[str, list[int]] = {}
    for r in run.rows:
        c = out.setdefault(r["tool"], [0, 0])
        c[0] += int(bool(r["metrics"][STE_METRICS["correct"]]))
        c[1] += 1
    return {t: (c, n) for t, (c, n) in out.items()}


def ste_eval_items(base_url: str, *, single_call_only: bool = True, per_tool: int = 0,
                   tools: Sequence[str] | None = None):
    """(items, records) of the real-tool eval set for STE: by default only the items whose gold
    answer is one call (STE scores one predicted call per request), at most ``per_tool`` per
    tool (0 = all), in file order."""
    from ..evaluation import items_from_real

    items, records = items_from_real(base_url)
    if single_call_only:
        items = [it for it in items if len(it.golden) == 1]
    if tools is not None:
        items = [it for it in items if it.tool in set(tools)]
    if per_tool:
        count: dict[str, int] = {}
        kept = []
        for it in items:
            if count.get(it.tool, 0) < per_tool:
                kept.append(it)
                count[it.tool] = count.get(it.tool, 0) + 1
        items = kept
    return items, records


class TokenCap:
    """A chat model whose replies are cut at ``max_tokens``. STE scores the first predicted call,
    which fits in a few dozen tokens; capping every evaluated model alike keeps a 135M model on
    two cores from spending most of the evaluation on prose after (or instead of) the call."""

    def __init__(self, model, max_tokens: int):
        self.model, self.max_tokens = model, int(max_tokens)
        self.name = getattr(model, "name", "model")

    def _gen(self, kw: dict) -> dict:
        return {**kw, "max_tokens": min(int(kw.get("max_tokens") or self.max_tokens), self.max_tokens)}

    def chat(self, messages, **kw):
        return self.model.chat(messages, **self._gen(kw))

    @property
    def parallelism(self) -> int:
        """Episodes that can run at once: the wrapped model's."""
        return getattr(self.model, "parallelism", 1)
