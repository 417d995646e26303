"""The book runner: execute the numbered notebooks with papermill, then build the HTML book.

``python -m toolalpaca_utils.book --profile cpu`` (what ``make book`` runs):

1. every ``notebooks/0[0-9]_*.ipynb`` that exists is executed in order with papermill, with the
   parameters of the chosen profile (:func:`toolalpaca_utils.profiles.load_profile`), into
   ``book/executed/<name>.ipynb``. If one fails, the run stops with a message naming the
   notebook and the cell; everything that ran so far (including the failed notebook's partial
   output) is kept.
2. generated pages are written next to the executed notebooks: ``book/executed/timings.md`` and
   ``timings.json`` (per-notebook run times from papermill's metadata) and the fragments under
   ``book/executed/fragments/`` that ``book/index.md`` and the method pages include: the headline
   table and the "reference vs this book" tables. The fragments only reference glue keys that
   an executed notebook really contains, so a notebook that does not exist yet (or a key it does
   not glue yet) is never a build error; the values themselves are pasted by ``myst_nb`` from
   the executed notebooks, never written here.
3. ``jupyter-book build . --toc book/_toc.yml --all`` renders ``_build/html``; its log is kept in
   ``_build/book-build.log`` for ``scripts/check_book.py``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from toolalpaca_utils import performance
from toolalpaca_utils.profiles import PROFILES, load_profile

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
BOOK_DIR = REPO_ROOT / "book"
EXECUTED_DIR = BOOK_DIR / "executed"
BUILD_DIR = REPO_ROOT / "_build"
HTML_DIR = BUILD_DIR / "html"
BUILD_LOG = BUILD_DIR / "book-build.log"
NOTEBOOK_GLOB = "0[0-9]_*.ipynb"
FRAGMENTS = "fragments"
PRIVATE_KERNEL = "toolalpaca-book"

log = logging.getLogger("toolalpaca_utils.book")


# --------------------------------------------------------------------------------------------
# What the book shows from each notebook. Keys are the names the notebooks pass to
# ``myst_nb.glue``; a key is only referenced once an executed notebook really contains it.
# ``fmt`` is a format spec as used by the ``{glue:text}`` role (always ending in its type char).


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    fmt: str = "s"


HEADLINES: dict[str, list[Headline]] = {
    "01_toolset": [
        Headline("toolset_n_accepted", "catalogue tools accepted (valid OpenAPI 3 spec)"),
        Headline("toolset_n_rejected", "catalogue entries rejected (with reasons)"),
        Headline("toolset_yield_pct", "yield of the toolset generation (%)"),
        Headline("toolset_n_categories", "categories in the toolset"),
        Headline("toolset_n_real_tools", "real, executable tools (offline FastAPI app)"),
        Headline("toolset_minutes", "server-minutes to generate the toolset (summed over parallel servers; "
                                    "wall time: run-time table)"),
    ],
    "02_simulation": [
        Headline("sim_n_train", "simulated training instances kept"),
        Headline("sim_n_eval", "evaluation instances on held-out tools"),
        Headline("sim_n_rejects", "simulated instances dropped (with reasons)"),
        Headline("sim_yield_per_1k", "instances kept per 1k generated tokens"),
        Headline("sim_mode", "simulation strategy / executor"),
        Headline("sim_minutes", "minutes of simulation"),
    ],
    "03_training": [
        Headline("training_n_examples", "training sequences"),
        Headline("training_final_loss", "final training loss"),
        Headline("training_tokens_per_s", "training throughput (tokens/s)"),
        Headline("training_peak_rss_gb", "peak memory while training (GB RSS)"),
        Headline("training_minutes", "minutes of LoRA fine-tuning"),
    ],
    "04_evaluation": [
        Headline("eval_minutes", "minutes of evaluation (both models, all sets)"),
    ],
    "05_diversity": [
        Headline("div_points", "numbers of distinct training tools compared"),
        Headline("div_n_instances", "training instances per point (fixed budget)"),
        Headline("div_trend_simulated",
                 "API match change from fewest to most tools, unseen simulated tools (points)"),
        Headline("div_trend_real", "API match change from fewest to most tools, real tools (points)"),
        Headline("div_minutes", "minutes of the diversity sweep"),
    ],
    "06_ste": [
        Headline("ste_trials_per_api", "exploration trials per API"),
        Headline("ste_n_distilled", "distilled examples kept"),
        Headline("ste_cl_first_batch_no_replay",
                 "continual learning: first batch after the last round, no replay (correct %)"),
        Headline("ste_cl_overall_replay",
                 "continual learning: all batches after the last round, with replay (correct %)"),
        Headline("ste_minutes", "minutes of STE"),
    ],
}


@dataclass(frozen=True)
class Contrast:
    """A measure shown for a baseline and an improved model side by side on the landing page."""

    label: str
    base_key: str
    improved_key: str
    fmt: str = "s"


def _eval_contrasts(set_name: str, set_label: str) -> list[Contrast]:
    return [Contrast(f"{set_label}: {metric_label}", f"eval_{set_name}_base_{metric}",
                     f"eval_{set_name}_fine_tuned_{metric}")
            for metric, metric_label in (("well_formed", "well-formed %"),
                                         ("api_match", "API match %"),
                                         ("overall", "overall % (process and response)"))]


CONTRASTS: dict[str, tuple[str, str, list[Contrast]]] = {
    # stem: (column title of the baseline, column title of the improved model, rows)
    "04_evaluation": ("base", "fine-tuned",
                      _eval_contrasts("simulated", "unseen simulated tools")
                      + _eval_contrasts("real", "real tools")
                      + _eval_contrasts("file", "ToolAlpaca-format eval file")),
    "06_ste": ("baseline", "+ STE", [
        Contrast("correct %, in-context (retrieved demonstrations)", "ste_correct_base",
                 "ste_correct_icl"),
        Contrast("correct %, fine-tuned on distilled examples", "ste_correct_base",
                 "ste_correct_ft"),
    ]),
}


@dataclass(frozen=True)
class Comparison:
    """One row of a "reference vs this book" table on a method page."""

    label: str
    reference: str
    notebook: str
    key: str
    fmt: str = "s"


COMPARISONS: dict[str, list[Comparison]] = {
    "toolalpaca": [
        Comparison("tools documented from the catalogue", "400+", "01_toolset",
                   "toolset_n_accepted"),
        Comparison("categories in the toolset", "50", "01_toolset", "toolset_n_categories"),
        Comparison("simulated training instances", "3,938", "02_simulation", "sim_n_train"),
        Comparison("evaluation instructions on unseen simulated tools", "100 (10 tools)",
                   "02_simulation", "sim_n_eval"),
        Comparison("overall %, unseen simulated tools, base model",
                   "Vicuna-7B ~17; Vicuna-13B 16.0", "04_evaluation",
                   "eval_simulated_base_overall"),
        Comparison("overall %, unseen simulated tools, fine-tuned",
                   "ToolAlpaca-7B ~60; ToolAlpaca-13B 70.0", "04_evaluation",
                   "eval_simulated_fine_tuned_overall"),
        Comparison("overall %, real tools, base model", "Vicuna-7B 7.9; Vicuna-13B 12.3",
                   "04_evaluation", "eval_real_base_overall"),
        Comparison("overall %, real tools, fine-tuned",
                   "ToolAlpaca-7B 55.3; ToolAlpaca-13B 61.4", "04_evaluation",
                   "eval_real_fine_tuned_overall"),
        Comparison("more distinct tools at a fixed budget (API match change, points)",
                   "helps (no numbers published)", "05_diversity", "div_trend_simulated"),
    ],
    "ste": [
        Comparison("trials per API (episodes × trials)", "60 (15 × 4)", "06_ste",
                   "ste_trials_per_api"),
        Comparison("correct %, baseline", "Mistral-Instruct-7B 30.1; GPT-4 60.8", "06_ste",
                   "ste_correct_base"),
        Comparison("correct %, + STE in-context", "Mistral-Instruct-7B 47.9; GPT-4 76.3",
                   "06_ste", "ste_correct_icl"),
        Comparison("correct %, + STE fine-tuned", "Mistral-Instruct-7B 76.8", "06_ste",
                   "ste_correct_ft"),
        Comparison("continual learning, first batch, no replay", "~0", "06_ste",
                   "ste_cl_first_batch_no_replay"),
        Comparison("continual learning, overall, with replay", "~73", "06_ste",
                   "ste_cl_overall_replay"),
    ],
}


# --------------------------------------------------------------------------------------------
# Discovering and reading notebooks


def discover_notebooks(notebooks_dir: Path | str = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``0[0-9]_*.ipynb``) that exist, in order."""
    return sorted(Path(notebooks_dir).glob(NOTEBOOK_GLOB))


def executed_notebooks(executed_dir: Path | str = EXECUTED_DIR) -> list[Path]:
    return sorted(Path(executed_dir).glob(NOTEBOOK_GLOB))


def select_notebooks(notebooks: Sequence[Path], only: Iterable[str] | None) -> list[Path]:
    """Filter ``notebooks`` to the stems (or numeric prefixes, e.g. ``01``) listed in ``only``."""
    if not only:
        return list(notebooks)
    wanted = [w.strip().removesuffix(".ipynb") for w in only if w.strip()]
    chosen: list[Path] = []
    for w in wanted:
        matches = [p for p in notebooks if p.stem == w or p.stem.split("_", 1)[0] == w]
        if not matches:
            have = ", ".join(p.stem for p in notebooks) or "none"
            raise SystemExit(f"--only {w!r}: no such notebook in notebooks/ (have: {have})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def glued_keys(notebook: Path | str | nbformat.NotebookNode) -> dict[str, str]:
    """``{key: text/plain}`` of every ``myst_nb.glue`` output in an executed notebook."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(
        str(notebook), as_version=4)
    out: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = meta.get("mime_prefix", "")
            data = output.get("data", {})
            text = data.get(prefix + "text/plain")
            if isinstance(text, list):
                text = "".join(text)
            out[meta["name"]] = text if text is not None else ""
    return out


def available_glue(executed_dir: Path | str = EXECUTED_DIR) -> dict[str, dict[str, str]]:
    """``{notebook stem: {key: text/plain}}`` over the executed notebooks."""
    return {p.stem: glued_keys(p) for p in executed_notebooks(executed_dir)}


def glue_ref(stem: str, key: str, fmt: str = "s") -> str:
    """A ``{glue:text}`` role pasting ``key`` from ``book/executed/<stem>.ipynb``.

    The path is absolute from the book's source directory so the fragment works wherever it is
    included; the format spec is always given because myst-nb splits it off at the last colon.
    """
    return f"{{glue:text}}`/book/executed/{stem}.ipynb::{key}:{fmt}`"


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


@dataclass(frozen=True)
class Pasted:
    """One glued value the landing page pastes: where it comes from and how it is formatted."""

    notebook: str
    key: str
    label: str
    fmt: str
    text: str  # the text/plain stored in the executed notebook


def headline_items(executed_dir: Path | str = EXECUTED_DIR) -> list[Pasted]:
    """Every value the landing page pastes, in page order: single results, then contrasts.

    Only keys that an executed notebook really glues are included.
    """
    glue = available_glue(executed_dir)
    items = []
    for stem, keys in glue.items():
        for h in HEADLINES.get(stem, []):
            if h.key in keys:
                items.append(Pasted(stem, h.key, h.label, h.fmt, keys[h.key]))
    for stem, keys in glue.items():
        for c in CONTRASTS.get(stem, ("", "", []))[2]:
            for key in (c.base_key, c.improved_key):
                if key in keys:
                    items.append(Pasted(stem, key, c.label, c.fmt, keys[key]))
    return items


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


# --------------------------------------------------------------------------------------------
# Running notebooks


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""

    def __init__(self, message: str, *, notebook: str, cell: int | None = None,
                 ename: str | None = None, evalue: str | None = None,
                 output_path: Path | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        self.output_path = output_path


def kernel_name() -> str:
    """A kernel that runs this interpreter (the venv's python).

    The stock ``python3`` spec qualifies when its command is a bare ``python``/``python3``
    (jupyter_client swaps in ``sys.executable``) or this very interpreter. If something else
    (e.g. a user-wide spec for another Python) shadows it, a private spec under
    ``_build/jupyter`` is put first on ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
        if argv0 in bare or os.path.abspath(argv0) == os.path.abspath(sys.executable):
            return "python3"
    except NoSuchKernel:
        pass
    root = BUILD_DIR / "jupyter"
    spec_dir = root / "kernels" / PRIVATE_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (toolalpaca book)", "language": "python",
    }, indent=1))
    paths = [str(root)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(paths)
    return PRIVATE_KERNEL


def _failure_message(src: Path, out: Path, profile: str, exc: BaseException) -> NotebookFailed:
    """Name the notebook and the failing cell (as numbered in the *source* notebook)."""
    from papermill.exceptions import PapermillExecutionError

    stem = src.stem
    cell_no = None
    where = "an unknown cell"
    first_line = ""
    ename = type(exc).__name__
    text_lines = str(exc).strip().splitlines()
    evalue = text_lines[-1] if text_lines else ""
    try:
        nb = nbformat.read(str(out), as_version=4)
        cells = [c for c in nb.cells
                 if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    except Exception:  # noqa: BLE001 - the output may not exist if the kernel never started
        cells = []
    index = None
    if isinstance(exc, PapermillExecutionError):
        index, ename, evalue = exc.cell_index, exc.ename, exc.evalue
        exec_count = exc.exec_count
    else:
        exec_count = None
        for i, c in enumerate(cells):
            if c.get("metadata", {}).get("papermill", {}).get("status") in ("failed", "running"):
                index, exec_count = i, c.get("execution_count")
                break
    if index is not None:
        injected = sum(1 for c in cells[:index]
                       if "injected-parameters" in c.get("metadata", {}).get("tags", []))
        cell_no = index - injected + 1
        where = f"cell {cell_no}" + (f" (In [{exec_count}])" if exec_count else "")
        if index < len(cells):
            src_lines = [ln for ln in cells[index].source.splitlines() if ln.strip()]
            first_line = src_lines[0][:100] if src_lines else ""
    try:
        shown = src.resolve().relative_to(REPO_ROOT)
    except ValueError:
        shown = src
    msg = (
        f"notebook {stem} failed in {where} of {shown}: {ename}: {evalue}\n"
        + (f"  cell starts with: {first_line}\n" if first_line else "")
        + (f"  the partly executed notebook (with the traceback) is kept: {out}\n"
           if out.exists() else "  no output notebook was written\n")
        + "  notebooks that ran before it are kept in the same folder; re-run only this one with\n"
        + f"  python -m toolalpaca_utils.book --profile {profile} --only {stem}"
    )
    return NotebookFailed(msg, notebook=stem, cell=cell_no, ename=ename, evalue=evalue,
                          output_path=out)


def run_notebooks(
    profile: str,
    notebooks: Sequence[Path | str] | None = None,
    out_dir: Path | str = EXECUTED_DIR,
    log_output: bool = True,
    progress_bar: bool = True,
    clean: bool | None = None,
) -> list[dict]:
    """Execute ``notebooks`` (default: all numbered ones) in order with papermill.

    Returns the timing records of the notebooks run. On the first failure raises
    :class:`NotebookFailed` after writing the timing table, so what ran is kept and visible.
    ``clean`` (default: True when running all notebooks) first removes executed notebooks left
    over from an earlier run, so the book never mixes runs.
    """
    import papermill as pm

    if profile not in PROFILES:
        load_profile(profile)  # raises a clear FileNotFoundError for an unknown profile
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_run = notebooks is None
    paths = [Path(p) for p in (notebooks if notebooks is not None else discover_notebooks())]
    if clean if clean is not None else all_run:
        for old in executed_notebooks(out_dir):
            old.unlink()
    if not paths:
        log.warning("[book] no notebooks matching notebooks/%s; nothing to run", NOTEBOOK_GLOB)
    kernel = kernel_name()
    runs_env = os.environ.get("TOOLALPACA_RUNS")
    results = []
    for i, src in enumerate(paths, 1):
        params = load_profile(profile, src.stem)
        out = out_dir / src.name
        print(f"[book] ({i}/{len(paths)}) {src.stem}: profile {profile}, "
              f"runs in {runs_env or REPO_ROOT / 'runs'} -> {out}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(src), str(out), parameters=params, kernel_name=kernel, language="python",
                progress_bar=progress_bar, log_output=log_output, cwd=str(src.parent),
            )
        except Exception as exc:  # papermill errors, dead kernels, timeouts
            failure = _failure_message(src, out, profile, exc)
            if out.exists():
                write_generated_pages(out_dir)
            raise failure from exc
        t = notebook_timing(out)
        print(f"[book] {src.stem} done in {_fmt_duration(t['duration_s'])} "
              f"(wall {time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
        results.append(t)
    write_generated_pages(out_dir)
    return results


# --------------------------------------------------------------------------------------------
# Building


class BookBuildError(RuntimeError):
    pass


def copy_book_sources(dest: Path | str) -> Path:
    """Copy the book's sources (``_config.yml`` and ``book/`` without ``executed/``) to ``dest``.

    A book built there is independent of the checkout's ``book/executed`` and ``_build``: tests
    use it so that a run does not collide with another ``make book`` in the same checkout.
    """
    dest = Path(dest)
    (dest / "book").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "_config.yml", dest / "_config.yml")
    shutil.copytree(BOOK_DIR, dest / "book", dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names
                                             if Path(d) == BOOK_DIR and n == "executed"])
    return dest


def _jupyter_book_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
            "sys.argv[0] = 'jupyter-book'; sys.exit(main())"]


def build_book(source: Path | str = REPO_ROOT, log_path: Path | str = BUILD_LOG,
               all_pages: bool = True) -> Path:
    """Render the book into ``<source>/_build/html``; return the path of ``index.html``.

    A full rebuild is the default because the landing page pastes values from other documents:
    an incremental build would keep stale numbers on a page whose own source did not change.
    """
    source = Path(source)
    write_generated_pages(source / "book" / "executed")
    if all_pages:
        # no leftovers of an earlier build: pages of notebooks that are gone, stale glue caches
        for stale in ("html", "jupyter_execute", ".doctrees"):
            shutil.rmtree(source / "_build" / stale, ignore_errors=True)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = _jupyter_book_cmd() + ["build", str(source), "--toc", str(source / "book" / "_toc.yml"),
                                 "--config", str(source / "_config.yml")]
    if all_pages:
        cmd.append("--all")
    print("[book] " + " ".join(cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    with log_path.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            sys.stderr.write(line)
        rc = proc.wait()
    index = source / "_build" / "html" / "index.html"
    if rc != 0 or not index.is_file():
        raise BookBuildError(f"jupyter-book build failed (exit {rc}); see {log_path}")
    print(f"[book] built {index} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return index


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m toolalpaca_utils.book",
        description="Run the numbered notebooks with papermill and build the book.")
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "cpu"),
                    help=f"run profile: {', '.join(PROFILES)} (default: $PROFILE or cpu)")
    ap.add_argument("--only", default="",
                    help="comma-separated notebooks to run, e.g. 01_toolset,02 (others keep "
                         "their earlier outputs)")
    ap.add_argument("--skip-run", action="store_true", help="do not run notebooks; build only")
    ap.add_argument("--no-build", action="store_true", help="run notebooks; do not build")
    ap.add_argument("--quiet-cells", action="store_true",
                    help="do not echo cell outputs to the terminal (papermill --log-output)")
    ap.add_argument("--source", type=Path, default=None,
                    help="build in this directory instead of the checkout: the book sources are "
                         "copied there, notebooks execute into DIR/book/executed and the HTML "
                         "goes to DIR/_build/html")
    args = ap.parse_args(argv)
    root = REPO_ROOT if args.source is None else copy_book_sources(args.source.resolve())
    executed, log_path = root / "book" / "executed", root / "_build" / "book-build.log"

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.INFO)
    started = datetime.now(timezone.utc)
    try:
        if not args.skip_run:
            only = [s for s in args.only.split(",") if s.strip()]
            nbs = select_notebooks(discover_notebooks(), only) if only else None
            run_notebooks(args.profile, nbs, out_dir=executed, log_output=not args.quiet_cells)
        if not args.no_build:
            build_book(root, log_path=log_path)
    except NotebookFailed as exc:
        print(f"\n[book] STOPPED: {exc}", file=sys.stderr)
        return 1
    except (BookBuildError, FileNotFoundError) as exc:
        print(f"\n[book] ERROR: {exc}", file=sys.stderr)
        return 1
    timings = collect_timings(executed)
    if timings:
        print("\n[book] notebook run times:", file=sys.stderr)
        for t in timings:
            print(f"  {t['notebook']:<16} {t['profile'] or '-':<5} {t['status']:<10} "
                  f"{_fmt_duration(t['duration_s'])}", file=sys.stderr)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    print(f"[book] done in {_fmt_duration(elapsed)}"
          + ("" if args.no_build else f"; open {root / '_build' / 'html' / 'index.html'}"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
