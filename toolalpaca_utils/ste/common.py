"""Small pieces several STE modules share, and the notebook's bookkeeping.

The Yes/No labels (reflection, judge, statistics) and :func:`clip` (memory, demonstrations,
judge prompts, rendered trials) are used by more than one submodule, so they live here rather
than in any one of them; :func:`cpu_seconds` and :func:`save_jsonl` serve the notebook.
"""
from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Iterable

YES_NO = ("Yes", "No")


def clip(text: str, limit: int) -> str:
    """The text on one line (whitespace collapsed), cut at ``limit`` characters with "…"."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the servers it stopped)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def save_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows as JSONL (replacing the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return path
