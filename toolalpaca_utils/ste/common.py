"""Small pieces several STE modules share, and the notebook's bookkeeping.

The Yes/No labels (reflection, judge, statistics) and :func:`clip` (memory, demonstrations,
judge prompts, rendered trials) are used by more than one submodule, so they live here rather
than in any one of them; :func:`cpu_seconds` and :func:`save_jsonl` (the run folder's clock and
JSONL writer, :mod:`toolalpaca_utils.runs`) serve the notebook.
"""
from __future__ import annotations

from ..runs import cpu_seconds  # noqa: F401  (re-exported for the notebook)
from ..runs import write_jsonl as save_jsonl  # noqa: F401

YES_NO = ("Yes", "No")


def clip(text: str, limit: int) -> str:
    """The text on one line (whitespace collapsed), cut at ``limit`` characters with "…"."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
