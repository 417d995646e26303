"""The book's Performance page: the latest benchmark results and the notebook run times.

Every script under ``benchmarks/`` writes ``benchmarks/results/<name>.json`` with a ``summary``
block (:func:`benchmark_summary`) next to its detailed figures; this module reads those blocks,
renders a table and a ratio plot, and writes ``book/executed/performance.md``. Nothing here
measures anything: a benchmark that was never run shows as "not run".
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# the page's benchmarks, in order (name of the JSON file without .json): `make bench` runs the
# first four; strategy_student needs a simulation corpus and runs on its own (about 20 minutes)
BENCHMARKS = ("simulation_yield", "training_throughput", "eval_throughput", "engine_weights", "strategy_student")


def benchmark_summary(*, title: str, measure: str, baseline: str, baseline_value: float,
                      ours: str, ours_value: float, target_ratio: float, note: str = "") -> dict:
    """The block each benchmark JSON carries for the Performance page.

    ``ratio`` is ours / baseline on ``measure`` (higher is better for both), measured in one
    invocation so that the ratio holds on a noisy machine even when the absolute figures do not.
    """
    ratio = (ours_value / baseline_value) if baseline_value else float("inf")
    return {
        "title": title, "measure": measure,
        "baseline": {"name": baseline, "value": round(float(baseline_value), 3)},
        "ours": {"name": ours, "value": round(float(ours_value), 3)},
        "ratio": round(ratio, 2) if ratio != float("inf") else None,
        "target_ratio": target_ratio,
        "meets_target": ratio >= target_ratio,
        "note": note,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def load_summaries(results_dir: Path | str = RESULTS_DIR) -> dict[str, dict | None]:
    """``{benchmark: summary or None}`` for every benchmark of ``make bench``.

    A JSON file that is missing, unreadable or has no ``summary`` block gives ``None`` (shown as
    "not run" with the reason), never an exception: the page must build without benchmarks.
    """
    out: dict[str, dict | None] = {}
    for name in BENCHMARKS:
        path = Path(results_dir) / f"{name}.json"
        try:
            data = json.loads(path.read_text())
            out[name] = data["summary"]
        except (OSError, ValueError, KeyError, TypeError):
            out[name] = None
    return out


def plot_ratios(summaries: dict[str, dict | None], path: Path | str) -> Path | None:
    """Bar chart of measured ratio vs target per benchmark; ``None`` when nothing was run."""
    done = {k: s for k, s in summaries.items() if s and s.get("ratio") is not None}
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [s["title"] for s in done.values()]
    ratios = [s["ratio"] for s in done.values()]
    colors = ["tab:green" if s["meets_target"] else "tab:red" for s in done.values()]
    ax.barh(names, ratios, color=colors)
    for y, s in enumerate(done.values()):
        ax.plot([s["target_ratio"]] * 2, [y - 0.4, y + 0.4], color="black", linestyle="--")
        ax.text(s["ratio"], y, f" {s['ratio']}×", va="center")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel("ours / reference way (higher is better; dashed: target)")
    ax.set_xlim(0, max(max(ratios), max(s["target_ratio"] for s in done.values())) * 1.25)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_page(summaries: dict[str, dict | None], timings_table: Sequence[str],
                image: str | None, sections: Sequence[str] = ()) -> str:
    """Markdown of the Performance page (``timings_table``: the run-time table's lines;
    ``sections``: more lines, before the run times)."""
    lines = ["# Performance", "",
             "Each benchmark runs the reference way of doing a step and ours side by side, in one",
             "invocation, on the same data and model, and prints both figures and their ratio; the",
             "table shows the JSON the scripts last wrote to `benchmarks/results/` (`make bench`",
             "reruns the three speed benchmarks; the student-by-strategy comparison needs notebook 02's",
             "corpus: `python benchmarks/strategy_student.py --profile cpu`). Absolute figures move with",
             "the machine's load; the ratio is the result.",
             "",
             "| benchmark | measure | reference way | ours | ratio | target | measured (UTC) |",
             "|---|---|---|---|---:|---:|---|"]
    for name, s in summaries.items():
        if s is None:
            lines.append(f"| `{name}` | not run (or its JSON has no summary): `python benchmarks/{name}.py` "
                         "| – | – | – | – | – |")
            continue
        ratio = f"**{s['ratio']}×**" if s["ratio"] is not None else "∞"
        verdict = "met" if s["meets_target"] else "**missed**"
        load = s.get("load_average_1min")
        when = s["measured_at"][:16].replace("T", " ") + (f" (load {load})" if load is not None else "")
        lines.append(f"| {s['title']} | {s['measure']} | {s['baseline']['name']}: {s['baseline']['value']} "
                     f"| {s['ours']['name']}: {s['ours']['value']} | {ratio} "
                     f"| ≥ {s['target_ratio']}× ({verdict}) | {when} |")
    lines.append("")
    notes = [(s["title"], s["note"]) for s in summaries.values() if s and s.get("note")]
    for title, note in notes:
        lines.append(f"- *{title}*: {note}")
    if notes:
        lines.append("")
    if image:
        lines += [f"![measured ratios against their targets]({image})", ""]
    lines += list(sections)
    lines += ["## Notebook run times", "",
              "From papermill's metadata in the executed notebooks of this book "
              "(the same table as {doc}`/book/executed/timings`).", ""]
    lines += list(timings_table) + [""]
    return "\n".join(lines)


LEVER_METRICS = ("well_formed", "api_match", "argument_match", "overall")


def levers_section(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """The corpus-levers ablation (``benchmarks/corpus_levers.py``'s rows, mean over seeds) as
    Markdown lines; a line saying it was not run when its JSON is missing or unreadable."""
    lines = ["## Corpus levers", "",
             "The fine-tuned student with one lever of the cpu corpus switched off at a time "
             "(`benchmarks/corpus_levers.py`; % of items, mean over seeds).", ""]
    try:
        rows = json.loads((Path(results_dir) / "corpus_levers.json").read_text())
        keys = [(r["set"], r["decoding"], r.get("tool_choice", "auto"), r["condition"]) for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return lines + ["Not run: `python benchmarks/corpus_levers.py` (see its docstring for a quick variant).", ""]
    lines += ["| set | decoding | tool_choice | condition | seeds | " + " | ".join(LEVER_METRICS) + " |",
              "|---|---|---|---|---:|" + "---:|" * len(LEVER_METRICS)]
    for key in dict.fromkeys(keys):
        group = [r for r, k in zip(rows, keys) if k == key]
        means = [round(sum(r[m] for r in group) / len(group), 1) for m in LEVER_METRICS]
        lines.append("| " + " | ".join(key) + f" | {len(group)} | " + " | ".join(map(str, means)) + " |")
    return lines + [""] + _corpus_lines(rows) + _paired_lines(Path(results_dir) / "corpus_levers_paired.json")


def thought_section(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """The thought before the first call (``benchmarks/thought_lever.py``: the student trained on
    the book's corpus with each thought) as Markdown lines; a line saying it was not run when its
    JSON is missing or unreadable."""
    lines = ["## The thought before a call", "",
             "The fine-tuned student trained on the cpu corpus with the first call's thought written three ways "
             "(`benchmarks/thought_lever.py`; % of items, training seed 0 unless the corpus ends in `_s1`): names (\"I need to call <name> …\"), "
             "summary (the function's documentation line, the corpus's), fixed (one name-free sentence). "
             "Decoded: free, the student writes its thought; documented (`--thought documented`), every thought "
             "is bound to one of the corpus's lines (a call's documentation line, the answer's fixed thought). "
             "Corpus: `thought`, the corpus of 2026-12-06 with its first thought rewritten; `thought_book`, the "
             "corpus notebook 02 writes now (`--out runs/thought_book`).", ""]
    try:
        rows = json.loads((Path(results_dir) / "thought_lever.json").read_text())
        cells = [[r["set"], r["decoding"], r.get("run", "thought"), r["variant"], r.get("decoded_thought", "free"),
                  *(str(r[m]) for m in LEVER_METRICS)] for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return lines + ["Not run: `python benchmarks/thought_lever.py`.", ""]
    return lines + ["| set | decoding | corpus | trained thought | decoded | " + " | ".join(LEVER_METRICS) + " |",
                    "|---|---|---|---|---|" + "---:|" * len(LEVER_METRICS),
                    *("| " + " | ".join(c) + " |" for c in sorted(cells)), ""]


CHOICE_RULES = ("greedy", "sum", "per token", "per character", "retrieval")


def choice_section(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """Function choice apart from arguments (``benchmarks/function_choice.py``: % of requests to a
    tool of several functions whose right function each rule picks) as Markdown lines; a line
    saying it was not run when its JSON is missing or unreadable."""
    lines = ["## Which sibling the student picks", "",
             "Each function's documented first step scored under the student (`benchmarks/function_choice.py`; "
             "% of requests to tools of two or more functions): greedy is what constrained greedy decoding picks, "
             "sum / per token / per character rank the candidates by log-probability, retrieval is all-MiniLM-L6-v2 "
             "(decoding \"retrieved\"), the same for every student. Held-out: requests of "
             "training tools that training held out; unseen simulated: notebook 04's set. The real tools, a test "
             "set, are not used.", ""]
    return lines + _benchmark_table(
        results_dir, "function_choice", ("student", "set", "requests", *CHOICE_RULES),
        lambda r: [r["adapter"], r["set"], str(r["requests"]), *(str(r.get(k, "–")) for k in CHOICE_RULES)])


GROUNDING_COLUMNS = ("set", "metric", "n", "a %", "b %", "a only", "b only", "p (McNemar exact)")


def grounding_section(results_dir: Path | str = RESULTS_DIR) -> list[str]:
    """Untyped against typed grounding, item by item (``benchmarks/typed_grounding.py``), as
    Markdown lines; a line saying it was not run when its JSON is missing or unreadable."""
    lines = ["## Typed grounding", "",
             "The fine-tuned student decoding \"retrieved\" with grounding untyped (a: any string parameter may take "
             "any reading of the request) and typed (b: a parameter of a known kind takes the request's values of "
             "that kind, a number one the request says; `benchmarks/typed_grounding.py`). Held-out: requests of "
             "training tools that training held out; simulated: notebook 04's unseen simulated set. The real "
             "tools, a test set, are not used.", ""]
    return lines + _benchmark_table(results_dir, "typed_grounding", GROUNDING_COLUMNS,
                                    lambda r: [_cell(r[c]) for c in GROUNDING_COLUMNS])


def _benchmark_table(results_dir: Path | str, name: str, header: Sequence[str], cells) -> list[str]:
    """The Markdown table of ``benchmarks/<name>.py``'s results (``cells``: a row of its JSON's
    table -> its cells; the first two columns are text, the rest figures), or a line saying it was
    not run when the JSON is missing or unreadable."""
    try:
        rows = [cells(r) for r in json.loads((Path(results_dir) / f"{name}.json").read_text())["table"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"Not run: `python benchmarks/{name}.py`.", ""]
    return ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2),
            *("| " + " | ".join(c) + " |" for c in rows), ""]


def _corpus_lines(rows: list[dict]) -> list[str]:
    """What each condition does to the corpus itself (notebook 02's quality report, mean over
    seeds); nothing when the rows predate these figures."""
    columns = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("corpus ")]
    if not columns:
        return []
    groups: dict[str, dict] = {}  # condition -> seed -> one of its rows
    for r in rows:  # a run's corpus is the same for every set and decoding: once per condition and seed
        groups.setdefault(r["condition"], {}).setdefault(r.get("seed"), r)
    lines = ["What each condition does to its corpus (notebook 02's quality report, mean over seeds):", "",
             "| condition | seeds | " + " | ".join(c.removeprefix("corpus ") for c in columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for condition, by_seed in groups.items():
        runs = list(by_seed.values())
        means = [_mean([r.get(c) for r in runs]) for c in columns]
        lines.append(f"| {condition} | {len(runs)} | " + " | ".join(means) + " |")
    return lines + [""]


def _mean(values: list) -> str:
    known = [v for v in values if isinstance(v, (int, float))]
    return str(round(sum(known) / len(known), 1)) if known else "–"


PAIRED_COLUMNS = ("set", "tool_choice", "comparison", "seeds", "metric", "n", "a %", "b %", "a only", "b only",
                  "p (McNemar exact)", "p (Holm)")


def _cell(value) -> str:
    """A table cell: p-values (unrounded in the JSON) to three decimals."""
    return str(round(value, 3)) if isinstance(value, float) else str(value)


def _paired_lines(path: Path) -> list[str]:
    """Each condition against 'all levers' on the same items (every seed pooled): whether the gap is
    more than noise. Nothing when the benchmark wrote no such file."""
    try:
        rows = [[_cell(r.get(c, "–")) for c in PAIRED_COLUMNS] for r in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not rows:
        return []
    return ["Each condition against all levers on the same items, the items of every seed pooled: a (all levers) "
            "and b (the condition) are right on `a only` and `b only` items the other gets wrong; McNemar's exact "
            "p, Holm-corrected over the conditions of each set and metric, above 0.05 means the gap is within the "
            "noise of the set.", "",
            "| " + " | ".join(PAIRED_COLUMNS) + " |", "|" + "---|" * len(PAIRED_COLUMNS),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def write_page(executed_dir: Path | str, timings_table: Sequence[str],
               results_dir: Path | str = RESULTS_DIR) -> Path:
    """Write ``performance.md`` (and ``performance.png`` when a benchmark ran) into ``executed_dir``."""
    executed_dir = Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    summaries = load_summaries(results_dir)
    image = plot_ratios(summaries, executed_dir / "performance.png")
    page = executed_dir / "performance.md"
    page.write_text(render_page(summaries, timings_table, image.name if image else None,
                                levers_section(results_dir) + thought_section(results_dir)
                                + choice_section(results_dir) + grounding_section(results_dir)))
    return page
