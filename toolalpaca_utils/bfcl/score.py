"""Per-category accuracy of result rows, decided by BFCL's checker, and the published numbers
the page compares them with."""
from __future__ import annotations

from typing import Sequence

from .checker import check
from .data import CATEGORIES, Question

# BFCL v4 non-live "simple" scores of small models, as published (leaderboard; FunctionGemma: its
# model card). They were trained on tens of thousands of verified calls; the student on a few
# hundred simulated ones.
PUBLISHED_SIMPLE = {
    "Qwen3-0.6B (FC)": 64.2,
    "Hammer2.1-0.5b": 62.4,
    "Granite-4.0-350m": 61.7,
    "FunctionGemma-270m (model card)": 61.6,
    "Llama-3.2-1B-Instruct (FC)": 44.0,
}
SUMMARY = "non_live_ast_summary"


def checker_items(rows: Sequence[dict], questions: dict[str, Question]) -> list[dict]:
    """What BFCL's checker needs for each row: the question's functions and possible answer."""
    return [{"id": r["id"], "category": r["category"], "function": questions[r["id"]].functions,
             "decoded": r["decoded"], "answer": questions[r["id"]].answer} for r in rows]


def score_rows(rows: Sequence[dict], questions: dict[str, Question]) -> tuple[list[dict], dict[str, float]]:
    """(rows with BFCL's verdict added, ``{category: accuracy %, "non_live_ast_summary": %}``).

    Every row is scored; a question with no row (an endpoint that stayed down) is missing from
    the count, which the page shows next to the accuracy."""
    result = check(checker_items(rows, questions)) if rows else {"verdicts": [], "summary": {}}
    scored = [{**row, "valid": v["valid"], "error_type": v["error_type"], "error": v["error"]}
              for row, v in zip(rows, result["verdicts"])]
    order = [*CATEGORIES, SUMMARY]
    summary = {k: round(100 * result["summary"][k], 1) for k in order if k in result["summary"]}
    return scored, summary
