"""What the book shows from each notebook, and reading it back from the executed notebooks.

Owns the declarations (:data:`HEADLINES`, :data:`CONTRASTS`, :data:`COMPARISONS`), reading the
``myst_nb.glue`` outputs of executed notebooks (:func:`glued_keys`, :func:`available_glue`,
:func:`headline_items`) and the ``{glue:text}`` role that pastes one of them (:func:`glue_ref`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from toolalpaca_utils.book.paths import EXECUTED_DIR, executed_notebooks


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
        Headline("eval_minutes", "minutes of evaluation (both models, both decodings, all sets)"),
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
    "07_bfcl": [
        Headline("bfcl_minutes", "minutes of the BFCL run (both models, both decodings)"),
    ],
}


@dataclass(frozen=True)
class Contrast:
    """A measure shown for a baseline and an improved model side by side on the landing page."""

    label: str
    base_key: str
    improved_key: str
    fmt: str = "s"


def _eval_contrasts(set_name: str, set_label: str, decoding: str = "") -> list[Contrast]:
    """Base vs fine-tuned rows of one eval set; ``decoding`` "constrained", "grounded" or "retrieved": the rows of
    the steps decoded under the tool's schema (keys ``eval_<set>_<model>_<decoding>_<metric>``)."""
    suffix, label = (f"_{decoding}", f"{set_label}, {decoding} decoding") if decoding else ("", set_label)
    return [Contrast(f"{label}: {metric_label}", f"eval_{set_name}_base{suffix}_{metric}",
                     f"eval_{set_name}_fine_tuned{suffix}_{metric}")
            for metric, metric_label in (("well_formed", "well-formed %"),
                                         ("api_match", "API match %"),
                                         ("overall", "overall % (process and response)"))]


def _bfcl_contrasts(decoding: str) -> list[Contrast]:
    """Base vs fine-tuned on BFCL, per category (keys ``bfcl_<model>_<decoding>_<category>``)."""
    return [Contrast(f"BFCL {category}, {decoding} decoding (%)", f"bfcl_base_{decoding}_{category}",
                     f"bfcl_fine_tuned_{decoding}_{category}")
            for category in ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance",
                             "non_live_ast_summary")]


CONTRASTS: dict[str, tuple[str, str, list[Contrast]]] = {
    # stem: (column title of the baseline, column title of the improved model, rows)
    "04_evaluation": ("base", "fine-tuned",
                      _eval_contrasts("simulated", "unseen simulated tools")
                      + _eval_contrasts("real", "real tools")
                      + _eval_contrasts("simulated", "unseen simulated tools", "constrained")
                      + _eval_contrasts("real", "real tools", "constrained")
                      + _eval_contrasts("simulated", "unseen simulated tools", "grounded")
                      + _eval_contrasts("real", "real tools", "grounded")
                      + _eval_contrasts("simulated", "unseen simulated tools", "retrieved")
                      + _eval_contrasts("real", "real tools", "retrieved")
                      + _eval_contrasts("file", "ToolAlpaca-format eval file")),
    "06_ste": ("baseline", "+ STE", [
        Contrast("correct %, in-context (retrieved demonstrations)", "ste_correct_base",
                 "ste_correct_icl"),
        Contrast("correct %, fine-tuned on distilled examples", "ste_correct_base",
                 "ste_correct_ft"),
    ]),
    "07_bfcl": ("base", "fine-tuned", _bfcl_contrasts("free") + _bfcl_contrasts("constrained")),
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


def declared_keys() -> dict[str, set[str]]:
    """``{notebook stem: keys}``: every glue key a page of the book reads (headlines, contrasts,
    method-page comparisons); a test checks each is glued by its notebook and nothing else is."""
    keys: dict[str, set[str]] = {}
    for stem, heads in HEADLINES.items():
        keys.setdefault(stem, set()).update(h.key for h in heads)
    for stem, (_, _, rows) in CONTRASTS.items():
        keys.setdefault(stem, set()).update(k for c in rows for k in (c.base_key, c.improved_key))
    for rows in COMPARISONS.values():
        for c in rows:
            keys.setdefault(c.notebook, set()).add(c.key)
    return keys


# --------------------------------------------------------------------------------------------
# Reading glue back from executed notebooks


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
# The values the landing page pastes


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
