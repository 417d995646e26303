"""The instance corpus on disk: what simulation writes and training/evaluation read.

An *instance* is one simulated (or explored) tool-use conversation::

    {"id", "tool" (record Name), "instruction", "strategy", "mode",
     "steps": [{"text" (assistant ReAct text), "thought", "action", "action_input" (JSON text),
                "observation", "status" (HTTP code or None), "valid" (bool), "error"}],
     "final": {"text", "answer"} | None,
     "kept" (bool), "drop_reason" (str | None), "split" ("train" | "eval" | "rejects"),
     "golden": [{"Action", "Action_Input"}], "tokens": {"prompt", "completion"}}

A corpus directory holds ``tools.json`` (the tool records, ToolAlpaca format), one JSONL per
split (appended as instances finish, so a run can resume) and, once complete, a HF
``DatasetDict`` under ``dataset/`` whose nested fields (dicts and lists) are JSON text.
"""
from __future__ import annotations

import json
from pathlib import Path

from .runs import append_jsonl, read_jsonl, write_jsonl  # noqa: F401  (the corpus files' JSONL, re-exported)

SPLITS = ("train", "eval", "rejects")
NESTED_FIELDS = ("steps", "final", "golden", "tokens")


def save_tools(out_dir: str | Path, records: list[dict]) -> Path:
    path = Path(out_dir) / "tools.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1))
    return path


def load_tools(corpus_dir: str | Path) -> dict[str, dict]:
    """Tool records of a corpus, keyed by Name."""
    records = json.loads((Path(corpus_dir) / "tools.json").read_text())
    return {r["Name"]: r for r in records}


def load_split(corpus_dir: str | Path, split: str) -> list[dict]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return read_jsonl(Path(corpus_dir) / f"{split}.jsonl")


def to_dataset_dict(corpus_dir: str | Path):
    """Write and return the HF DatasetDict of a corpus (nested fields as JSON text)."""
    from datasets import Dataset, DatasetDict

    corpus_dir = Path(corpus_dir)
    splits = {}
    for split in SPLITS:
        rows = [_flatten(r) for r in load_split(corpus_dir, split)]
        splits[split] = Dataset.from_list(rows) if rows else Dataset.from_dict({"id": []})
    dd = DatasetDict(splits)
    dd.save_to_disk(str(corpus_dir / "dataset"))
    return dd


def _flatten(row: dict) -> dict:
    # nested values (and anything whose type varies between rows) become JSON text columns
    return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) or k in NESTED_FIELDS else v
            for k, v in row.items()}


def trajectory_turns(instance: dict) -> list[tuple[str, str | None]]:
    """(assistant text, observation) pairs of an instance, the final answer last with ``None``."""
    turns: list[tuple[str, str | None]] = [(s["text"], s.get("observation") or "") for s in instance.get("steps") or []]
    if instance.get("final"):
        turns.append((instance["final"]["text"], None))
    return turns
