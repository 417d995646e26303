"""BFCL's questions and possible answers, read from the installed ``bfcl-eval`` (never copied),
and the fixed, seeded subset a profile runs."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from .install import BFCL_VERSION, data_dir, require_installed

# The non-live Python AST categories (no network, no execution) plus irrelevance.
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
# BFCL's file names carry the benchmark generation; v4 is what bfcl-eval 2026.x ships.
FILE_PREFIX = "BFCL_v4"


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    instruction: str
    functions: list          # BFCL function docs: {"name", "description", "parameters"}
    answer: list | None      # possible answers (None for irrelevance: the right answer is no call)


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _instruction(question: list) -> str:
    """The user's request. These categories are single-turn; every user message of the turn is kept."""
    return "\n".join(m["content"] for turn in question for m in turn if m.get("role") == "user")


def load_category(category: str, version: str = BFCL_VERSION) -> list[Question]:
    """Every question of ``category`` in BFCL's order, with its possible answer."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; these are scored: {', '.join(CATEGORIES)}")
    require_installed(version)
    root = data_dir(version)
    answers: dict[str, list] = {}
    answer_file = root / "possible_answer" / f"{FILE_PREFIX}_{category}.json"
    if answer_file.is_file():
        answers = {r["id"]: r["ground_truth"] for r in _read(answer_file)}
    return [Question(r["id"], category, _instruction(r["question"]), r["function"], answers.get(r["id"]))
            for r in _read(root / f"{FILE_PREFIX}_{category}.json")]


def subset(questions: list[Question], n: int, seed: int) -> list[Question]:
    """``n`` questions drawn with ``seed`` (0: all), in BFCL's order. The draw depends only on the
    ids, the seed and the category, so every run of a profile scores the same questions."""
    if not n or n >= len(questions):
        return list(questions)
    category = questions[0].category
    picked = set(random.Random(f"bfcl:{category}:{seed}").sample([q.id for q in questions], n))
    return [q for q in questions if q.id in picked]


def load(categories=CATEGORIES, n_per_category: int = 0, seed: int = 0) -> dict[str, list[Question]]:
    """The questions a run scores, per category."""
    return {c: subset(load_category(c), n_per_category, seed) for c in categories}
