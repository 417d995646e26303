"""The generated pages: run times, the landing page's headline and the comparison tables.

Owns reading run times from papermill's metadata (:func:`notebook_timing`,
:func:`collect_timings`), rendering the pages (:func:`render_timings_page`,
:func:`render_headline`, :func:`render_comparison`) and writing them next to the executed
notebooks (:func:`write_timings`, :func:`write_generated_pages`). The fragments only reference
glue keys an executed notebook really contains; the values are pasted by ``myst_nb``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import nbformat

from toolalpaca_utils import performance
from toolalpaca_utils.book.glue import (
    COMPARISONS, CONTRASTS, HEADLINES, available_glue, glue_ref, headline_items,
)
from toolalpaca_utils.book.paths import EXECUTED_DIR, FRAGMENTS, executed_notebooks

log = logging.getLogger("toolalpaca_utils.book")


# --------------------------------------------------------------------------------------------
# Timings (from papermill's metadata in the executed notebooks)


def notebook_timing(path: Path | str) -> dict:
    nb = nbformat.read(str(path), as_version=4)
    pm = nb.metadata.get("papermill", {})
    duration = pm.get("duration")
    slowest = None
    for i, cell in enumerate(nb.cells):
        d = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if d is not None and (slowest is None or d > slowest[1]):
            slowest = (i, d, cell.get("execution_count"))
    failed = bool(pm.get("exception")) or any(
        c.get("metadata", {}).get("papermill", {}).get("status") == "failed" for c in nb.cells)
    return {
        "notebook": Path(path).stem,
        "profile": (pm.get("parameters") or {}).get("profile"),
        "status": "failed" if failed else ("completed" if duration is not None else "incomplete"),
        "duration_s": round(float(duration), 1) if duration is not None else None,
        "start_time": pm.get("start_time"),
        "end_time": pm.get("end_time"),
        "slowest_cell": (
            {"index": slowest[0], "execution_count": slowest[2], "duration_s": round(slowest[1], 1)}
            if slowest else None),
    }


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def collect_timings(executed_dir: Path | str = EXECUTED_DIR) -> list[dict]:
    return [notebook_timing(p) for p in executed_notebooks(executed_dir)]


def render_timings_page(timings: list[dict]) -> str:
    lines = [
        "# Run times",
        "",
        "How long each notebook took in the run that produced this book, read from the",
        "metadata papermill stores in every executed notebook (`metadata.papermill.duration`).",
        "",
    ]
    return "\n".join(lines + timings_table(timings))


def timings_table(timings: list[dict]) -> list[str]:
    """The run-time table (markdown lines) shared by the timings and Performance pages."""
    if not timings:
        return ["No notebook has been executed yet: run `make book` (or",
                "`python -m toolalpaca_utils.book --profile tiny`).", ""]
    lines = [
        "| notebook | profile | status | run time | slowest cell | started (UTC) |",
        "|---|---|---|---:|---|---|",
    ]
    for t in timings:
        sc = t.get("slowest_cell")
        slow = (f"In [{sc['execution_count']}]: {_fmt_duration(sc['duration_s'])}" if sc else "–")
        lines.append(
            f"| {{doc}}`{t['notebook']} </book/executed/{t['notebook']}>` | {t['profile'] or '–'} "
            f"| {t['status']} | {_fmt_duration(t['duration_s'])} | {slow} "
            f"| {(t['start_time'] or '–')[:19].replace('T', ' ')} |")
    total = sum(t["duration_s"] or 0.0 for t in timings)
    lines += ["", f"Total: **{_fmt_duration(total)}** over {len(timings)} notebook(s).", ""]
    profiles = sorted({t["profile"] for t in timings if t["profile"]})
    if len(profiles) > 1:
        lines += ["```{warning}",
                  f"These notebooks were executed with different profiles ({', '.join(profiles)}); "
                  "re-run `make book` for a consistent book.", "```", ""]
    lines += ["The raw numbers are in `book/executed/timings.json`.", ""]
    return lines


def write_timings(executed_dir: Path | str = EXECUTED_DIR) -> list[dict]:
    executed_dir = Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    timings = collect_timings(executed_dir)
    (executed_dir / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    (executed_dir / "timings.md").write_text(render_timings_page(timings))
    performance.write_page(executed_dir, timings_table(timings))
    return timings


# --------------------------------------------------------------------------------------------
# Generated fragments: headline table and comparison tables


def _contrast_tables(glue: dict[str, dict[str, str]]) -> list[str]:
    out = []
    for stem, (base_title, improved_title, rows) in CONTRASTS.items():
        keys = glue.get(stem, {})
        present = [c for c in rows if c.base_key in keys or c.improved_key in keys]
        if not present:
            continue
        out += [f"| {{doc}}`{stem} </book/executed/{stem}>` | {base_title} | {improved_title} |",
                "|---|---:|---:|"]
        for c in present:
            cells = [glue_ref(stem, k, c.fmt) if k in keys else "–"
                     for k in (c.base_key, c.improved_key)]
            out.append(f"| {c.label} | {cells[0]} | {cells[1]} |")
        out.append("")
    return out


def render_headline(executed_dir: Path | str = EXECUTED_DIR) -> str:
    executed_dir = Path(executed_dir)
    glue = available_glue(executed_dir)
    singles = [i for i in headline_items(executed_dir)
               if any(h.key == i.key for h in HEADLINES.get(i.notebook, []))]
    timings = collect_timings(executed_dir)
    if not timings:
        return ("```{note}\nNo notebook has been executed yet, so there are no results to show. "
                "Run `make book` (or `PROFILE=tiny make book` for a quick pass).\n```\n")
    profiles = sorted({t["profile"] for t in timings if t["profile"]})
    out = [
        f"Profile of this run: **{', '.join(profiles) or 'unknown'}** · notebooks executed: "
        + ", ".join(f"{{doc}}`/book/executed/{t['notebook']}`" for t in timings)
        + ".",
        "",
    ]
    contrasts = _contrast_tables(glue)
    if singles:
        out += ["| result | this run | notebook |", "|---|---:|---|"]
        for i in singles:
            out.append(f"| {i.label} | {glue_ref(i.notebook, i.key, i.fmt)} "
                       f"| {{doc}}`{i.notebook} </book/executed/{i.notebook}>` |")
        out.append("")
    if contrasts:
        out += ["The base model against the improved one (fine-tuned, or helped by STE):", ""]
        out += contrasts
    if not singles and not contrasts:
        out += ["The executed notebooks do not glue any headline number yet.", ""]
    total = sum(t["duration_s"] or 0.0 for t in timings)
    out += [f"Notebook run time in total: **{_fmt_duration(total)}** "
            "(per notebook: {doc}`/book/executed/timings`).", ""]
    failed = [t["notebook"] for t in timings if t["status"] != "completed"]
    if failed:
        out += ["```{warning}", f"Not completed in this run: {', '.join(failed)}.", "```", ""]
    return "\n".join(out)


def render_comparison(page: str, executed_dir: Path | str = EXECUTED_DIR) -> str:
    glue = available_glue(executed_dir)
    out = ["| quantity | reference | this book |", "|---|---|---|"]
    for row in COMPARISONS[page]:
        if row.key in glue.get(row.notebook, {}):
            ours = (f"{glue_ref(row.notebook, row.key, row.fmt)} "
                    f"({{doc}}`{row.notebook} </book/executed/{row.notebook}>`)")
        else:
            ours = "not yet measured"
        out.append(f"| {row.label} | {row.reference} | {ours} |")
    return "\n".join(out) + "\n"


def write_generated_pages(executed_dir: Path | str = EXECUTED_DIR) -> list[dict]:
    """(Re)write timings and the included fragments from the executed notebooks."""
    executed_dir = Path(executed_dir)
    timings = write_timings(executed_dir)
    frag = executed_dir / FRAGMENTS
    frag.mkdir(parents=True, exist_ok=True)
    (frag / "headline.md").write_text(render_headline(executed_dir))
    for page in COMPARISONS:
        (frag / f"compare_{page}.md").write_text(render_comparison(page, executed_dir))
    glue = available_glue(executed_dir)
    for stem, keys in glue.items():
        wanted = [h.key for h in HEADLINES.get(stem, [])] + [
            k for c in CONTRASTS.get(stem, ("", "", []))[2] for k in (c.base_key, c.improved_key)]
        missing = [k for k in dict.fromkeys(wanted) if k not in keys]
        if missing:
            log.info("[book] %s does not glue %s (left out of the headline)", stem,
                     ", ".join(missing))
    return timings
