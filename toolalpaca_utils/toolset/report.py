"""Tables and plots of a run for the notebook: yield per gate, failures, the tools and the
category coverage."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from .. import openapi
from .gates import GATES

if TYPE_CHECKING:
    from .outcomes import ToolOutcome


def gate_table(outcomes: Sequence[ToolOutcome]) -> pd.DataFrame:
    """Yield per gate, in the order the gates apply.

    ``checked``/``failed`` count what the gate's level counts: entries (entry gates), attempts
    (attempt gates) or generated functions (function gates; a failed function is dropped).
    ``entries_stopped`` counts rejected entries whose decisive try failed the gate.
    """
    rows = []
    atts = [a for o in outcomes for a in o.attempts]
    for gate, (level, meaning) in GATES.items():
        if level == "entry":
            checked = sum(1 for o in outcomes if gate == "entry_fields" or not any(
                f.gate == "entry_fields" for f in o.entry_failures))
            failed = sum(1 for o in outcomes if any(f.gate == gate for f in o.entry_failures))
        elif level == "function":
            checked = sum(a.functions_checked for a in atts if gate in a.gates_checked)
            failed = sum(1 for a in atts for f in a.dropped if f.gate == gate)
        else:
            checked = sum(1 for a in atts if gate in a.gates_checked)
            failed = sum(1 for a in atts if any(f.gate == gate for f in a.failures))
        stopped = sum(1 for o in outcomes if not o.accepted and any(f.gate == gate for f in o.failures))
        rows.append({"gate": gate, "level": level, "checks": meaning, "checked": checked, "failed": failed,
                     "pass_pct": round(100.0 * (checked - failed) / checked, 1) if checked else None,
                     "entries_stopped": stopped})
    return pd.DataFrame(rows)


def tools_table(records: Sequence[dict], n: int | None = None) -> pd.DataFrame:
    """One row per tool: name, category, source, functions and a shortened introduction."""
    rows = []
    for r in list(records)[: n if n is not None else len(records)]:
        spec = openapi.record_spec(r)
        schemas = openapi.function_schemas(spec)
        rows.append({
            "Name": r["Name"], "Category": r["Category"], "source": r.get("source", ""),
            "functions": ", ".join(openapi.record_functions(r)),
            "parameters": sum(len(s["properties"]) for s in schemas.values()),
            "Introduction": (r.get("Introduction") or "")[:160],
        })
    return pd.DataFrame(rows)


def category_coverage(catalogue: pd.DataFrame, sampled: pd.DataFrame, records: Sequence[dict]) -> pd.DataFrame:
    """Per category: catalogue entries, text-only entries, sampled entries, accepted catalogue
    tools and real tools (sorted by accepted tools, then sampled)."""
    cats = sorted(set(catalogue["category"]) | {r["Category"] for r in records})
    rows = []
    for cat in cats:
        rows.append({
            "category": cat,
            "catalogue": int((catalogue["category"] == cat).sum()),
            "text_only": int(((catalogue["category"] == cat) & ~catalogue["non_text"]).sum()),
            "sampled": int((sampled["category"] == cat).sum()) if len(sampled) else 0,
            "accepted": sum(1 for r in records if r["Category"] == cat and r.get("source") == "catalogue"),
            "real": sum(1 for r in records if r["Category"] == cat and r.get("source") == "real"),
        })
    df = pd.DataFrame(rows)
    return df.sort_values(["accepted", "real", "sampled", "catalogue"], ascending=False).reset_index(drop=True)


def failure_summary(outcomes: Sequence[ToolOutcome], examples: int = 1) -> pd.DataFrame:
    """What went wrong, over all attempts: per gate, the number of failures (dropped functions
    included) and example reasons."""
    by_gate: dict[str, list[tuple[str, str]]] = {}
    for o in outcomes:
        fails = [(f, "entry") for f in o.entry_failures]
        for a in o.attempts:
            fails += [(f, "attempt") for f in a.failures] + [(f, "function dropped") for f in a.dropped]
        for f, _kind in fails:
            by_gate.setdefault(f.gate, []).append((o.entry.get("name", o.key), f.reason))
    rows = []
    for gate in GATES:
        items = by_gate.get(gate) or []
        if items:
            rows.append({"gate": gate, "failures": len(items),
                         "example": " | ".join(f"{n}: {r[:140]}" for n, r in items[:examples])})
    return pd.DataFrame(rows, columns=["gate", "failures", "example"])


def plot_category_coverage(coverage: pd.DataFrame, ax: Any = None, top: int = 30):
    """Horizontal bars per category: sampled entries vs accepted catalogue tools vs real tools."""
    import matplotlib.pyplot as plt

    df = coverage[(coverage["sampled"] > 0) | (coverage["real"] > 0)].head(top).iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(df) + 1)))
    y = range(len(df))
    ax.barh([i + 0.2 for i in y], df["sampled"], height=0.4, label="sampled entries", color="#c7d4e8")
    ax.barh([i - 0.2 for i in y], df["accepted"], height=0.4, label="accepted tools", color="#2b6cb0")
    ax.barh([i - 0.2 for i in y], df["real"], left=df["accepted"], height=0.4, label="real tools", color="#dd6b20")
    ax.set_yticks(list(y))
    ax.set_yticklabels(df["category"], fontsize=8)
    ax.set_xlabel("count")
    ax.set_title("Category coverage of the toolset")
    ax.legend(loc="lower right", fontsize=8)
    ax.figure.tight_layout()
    return ax


def plot_gate_yield(gates: pd.DataFrame, ax: Any = None):
    """Bars per gate: checked vs failed (function gates count functions, others attempts/entries)."""
    import matplotlib.pyplot as plt

    df = gates[gates["checked"] > 0]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(df))
    ax.bar([i - 0.2 for i in x], df["checked"], width=0.4, label="checked", color="#c7d4e8")
    ax.bar([i + 0.2 for i in x], df["failed"], width=0.4, label="failed", color="#c53030")
    labels = [f"{g}\n({lvl})" for g, lvl in zip(df["gate"], df["level"])]
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("count")
    ax.set_title("Quality gates: checked vs failed", pad=22)
    ax.legend(fontsize=8, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    for i, (checked, failed) in enumerate(zip(df["checked"], df["failed"])):
        if failed:
            ax.annotate(f"{100 * failed / checked:.0f}%", (i + 0.2, failed), ha="center", va="bottom", fontsize=7)
    ax.figure.tight_layout()
    return ax
