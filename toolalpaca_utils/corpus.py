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
import os
from pathlib import Path
from typing import Iterable

SPLITS = ("train", "eval", "rejects")
NESTED_FIELDS = ("steps", "final", "golden", "tokens")


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows and flush to disk: what is written survives a SIGKILL a moment later."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Replace a JSONL file atomically (a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, rows)
    os.replace(tmp, path)


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (a killed writer) is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


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
