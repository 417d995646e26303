"""Is a gap between two rows of a score table more than noise?

Every evaluation here scores each item right or wrong, on a few dozen items (one item of 30 is
3.3 points). Two models run on the *same* items, so the fair test of their difference is
McNemar's exact test: only the items one model gets right and the other wrong count, and under
"no difference" each such item is a coin toss (scipy's binomial test). A share gets a Wilson
interval (scipy's too). Nothing is dropped: two runs must score the same items, or it is an error.

A table asks many such questions at once (every set, decoding and metric), and one p below 0.05
in twenty is chance. So a table's p-values are also given Holm-corrected within each metric
(:func:`holm`), and "more than noise" is read on the corrected one.
"""
from __future__ import annotations

from typing import Sequence

LEVEL = 0.95    # the intervals' confidence level
ALPHA = 0.05    # a paired difference with p below this is read as more than noise


def share_interval(hits: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson interval of ``hits`` of ``n``, in percent (0, 0 for no items)."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 0.0
    ci = binomtest(hits, n).proportion_ci(confidence_level=level, method="wilson")
    return round(100 * ci.low, 1), round(100 * ci.high, 1)


def paired_test(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """McNemar's exact test of two models' right/wrong on the same items, in item order: both
    shares (%) with their Wilson intervals, the items only ``a`` / only ``b`` got right, the
    difference b − a in points, and the two-sided p-value (1.0 when no item tells them apart)."""
    from scipy.stats import binomtest

    if len(a) != len(b):
        raise ValueError(f"a paired test needs the same items: {len(a)} vs {len(b)} scores")
    n = len(a)
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    hits_a, hits_b = sum(map(bool, a)), sum(map(bool, b))
    pct = (lambda hits: round(100 * hits / n, 1)) if n else (lambda hits: 0.0)
    return {"n": n, "a %": pct(hits_a), "b %": pct(hits_b),
            "a 95% interval": "%.1f–%.1f" % share_interval(hits_a, n),
            "b 95% interval": "%.1f–%.1f" % share_interval(hits_b, n),
            "a only": a_only, "b only": b_only, "difference (points)": pct(hits_b - hits_a),
            "p (McNemar exact)": float(p), "more than noise": bool(p < ALPHA)}


#: a comparison table's columns after its labels (:func:`paired_test`'s, and the corrected p)
TEST_COLUMNS = ("n", "a %", "b %", "a 95% interval", "b 95% interval", "a only", "b only", "difference (points)",
                "p (McNemar exact)", "p (Holm)", "more than noise")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down correction of ``pvalues`` (one family of tests), in their order: the k-th
    smallest is multiplied by (m − k + 1), kept monotone and capped at 1. It bounds the chance of
    any false "more than noise" in the family by ALPHA, with no assumption on how the tests relate."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def scores_by_item(rows: Sequence[dict], metric: str) -> dict[str, bool]:
    """item id -> the row's ``metric`` (an evaluation row, :func:`toolalpaca_utils.evaluation.evaluate`)."""
    out: dict[str, bool] = {}
    for r in rows:
        if r["id"] in out:
            raise ValueError(f"item {r['id']!r} is scored twice in one run")
        out[r["id"]] = bool(r["metrics"][metric])
    return out


def compare_runs(rows_a: Sequence[dict], rows_b: Sequence[dict], metric: str = "overall") -> dict:
    """:func:`paired_test` of two runs' rows on ``metric``, items paired by id; the runs must hold
    the same items (a missing row would silently drop a failure)."""
    a, b = scores_by_item(rows_a, metric), scores_by_item(rows_b, metric)
    if a.keys() != b.keys():
        missing = sorted(a.keys() ^ b.keys())
        raise ValueError(f"the runs score different items ({len(missing)} in one only, e.g. {missing[:3]})")
    ids = sorted(a)
    return paired_test([a[i] for i in ids], [b[i] for i in ids])


def comparison_table(pairs: dict[str, tuple[Sequence[dict], Sequence[dict]]],
                     metrics: Sequence[str] = ("overall",)):
    """One row per (comparison, metric): ``pairs`` maps a label ("real · constrained: base →
    fine-tuned") to the rows of model a and of model b. ``p (Holm)`` corrects the p-values of each
    metric's comparisons together (:func:`holm`); "more than noise" is read on it."""
    import pandas as pd

    rows = [{"comparison": label, "metric": metric, **compare_runs(rows_a, rows_b, metric)}
            for label, (rows_a, rows_b) in pairs.items() for metric in metrics]
    return pd.DataFrame(corrected(rows, family=("metric",)),
                        columns=["comparison", "metric", *TEST_COLUMNS])  # columns even when empty


def corrected(rows: Sequence[dict], family: Sequence[str]) -> list[dict]:
    """``rows`` (each with :func:`paired_test`'s fields) with ``p (Holm)`` over the rows that share
    the values of ``family``'s keys, and "more than noise" read on it."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(r[k] for k in family), []).append(i)
    out = [dict(r) for r in rows]
    for members in groups.values():
        for i, p in zip(members, holm([rows[i]["p (McNemar exact)"] for i in members])):
            out[i]["p (Holm)"], out[i]["more than noise"] = p, bool(p < ALPHA)
    return out


def pairwise(runs: dict) -> dict[str, tuple]:
    """Every pair of ``runs`` (name -> an EvalRun, in order) as :func:`comparison_table`'s pairs."""
    order = list(runs)
    return {f"{runs[a].name} → {runs[b].name}": (runs[a].rows, runs[b].rows)
            for i, a in enumerate(order) for b in order[i + 1:]}


def noise_sentence(table, metric: str) -> str:
    """One clause for a closing note: which pairs of ``table`` (:func:`comparison_table`) differ
    by more than noise on ``metric``."""
    rows = table[table.metric == metric]
    beyond = rows.loc[rows["more than noise"].astype(bool), "comparison"].tolist()
    if beyond:
        return (f"of the {len(rows)} paired comparisons, {'; '.join(beyond)} differ by more than noise "
                f"(McNemar, Holm-corrected p < {ALPHA})")
    if len(rows):
        return f"no pair of them differs by more than noise (McNemar, Holm-corrected p ≥ {rows['p (Holm)'].min():.2f})"
    return "no pair of models was evaluated"
