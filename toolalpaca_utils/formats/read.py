"""Training data in any of the formats, read back into project instances: what lets notebook 03
train on a ToolAlpaca-format instance file or a messages + tools dataset as it trains on its own
corpus (the same prompt builder, the same loss mask).

What a path is decides its format:

=========================================  ==========================================  ============
path                                       format                                      splits
=========================================  ==========================================  ============
a folder with ``tools.json``               the project's corpus                        train, eval
a folder with ``dataset_dict.json``        messages + tools ``DatasetDict``            its splits
a ``.jsonl`` file                          chat JSONL (OpenAI, or messages + tools)    train
a ``.json`` file                           ToolAlpaca tool records with ``Instances``  train
=========================================  ==========================================  ============

The chat formats carry JSON schemas, not the OpenAPI tool records the ReAct prompt is built from:
their records are the ``tools.json`` of the corpus they were exported from, found in the
data's folder or up to two folders above it (``<corpus>/formats/messages``). A ToolAlpaca file
carries its own records.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .chat import read_openai_jsonl
from .common import FormatError, records_by_name
from .dataset import from_messages_dataset
from .toolalpaca import from_toolalpaca


@dataclass
class TrainingData:
    """Instances of a training source, per split, with the tool records their prompts need."""

    records: dict[str, dict]
    splits: dict[str, list[dict]]
    fmt: str                       # "corpus" | "messages" | "jsonl" | "toolalpaca"
    source: Path


def _corpus_records(path: Path) -> dict[str, dict]:
    """The tools.json of the corpus that holds ``path`` (its folder or up to two above)."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *list(start.parents)[:2]):
        if (folder / "tools.json").is_file():
            return records_by_name(json.loads((folder / "tools.json").read_text(encoding="utf-8")))
    raise FileNotFoundError(
        f"{path}: a chat-format dataset names its tools but does not carry their OpenAPI records, which the "
        f"ReAct prompt is built from; no tools.json in {start} or the two folders above it (export it inside "
        f"its corpus folder, as notebook 02 does, or give the ToolAlpaca-format file instead)")


def _check_tools(data: TrainingData) -> TrainingData:
    """Every instance's tool has a record: an error names the first instance that has none."""
    for split, instances in data.splits.items():
        for i, inst in enumerate(instances):
            if inst["tool"] not in data.records:
                raise FormatError(f"instance {inst.get('id') or '#' + str(i)!r} ({split} of {data.source})", "tool",
                                  f"no tool record named {inst['tool']!r}")
    return data


def read_training_data(path: str | Path) -> TrainingData:
    """The instances and tool records of ``path`` (see the module docstring for what it may
    be). A missing path, an unknown layout or a malformed record is an error naming it."""
    from ..corpus import load_split, load_tools

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training data {path} does not exist")
    if path.is_dir() and (path / "tools.json").is_file():
        data = TrainingData(load_tools(path), {s: load_split(path, s) for s in ("train", "eval")}, "corpus", path)
    elif path.is_dir() and (path / "dataset_dict.json").is_file():
        records = _corpus_records(path)
        data = TrainingData(records, from_messages_dataset(path, records=records), "messages", path)
    elif path.is_file() and path.suffix == ".jsonl":
        records = _corpus_records(path)
        data = TrainingData(records, {"train": read_openai_jsonl(path, records=records)}, "jsonl", path)
    elif path.is_file() and path.suffix == ".json":
        try:
            instances, records = from_toolalpaca(path)
        except json.JSONDecodeError as exc:
            raise FormatError(f"file {path.name}", "(whole file)", f"not JSON ({exc.msg}, line {exc.lineno})") from None
        data = TrainingData(records_by_name(records), {"train": instances}, "toolalpaca", path)
    else:
        raise ValueError(f"{path}: not training data; expected a corpus folder (tools.json), a messages + tools "
                         f"dataset folder (dataset_dict.json), a chat .jsonl file or a ToolAlpaca .json file")
    return _check_tools(data)
