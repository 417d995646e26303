"""The messages + tools corpus as a Hugging Face ``DatasetDict`` (train / eval), as TRL's
``SFTTrainer`` reads it.

Columns: ``messages`` (a list of message structs: role, content, tool_calls, tool_call_id, name),
``tools`` (a list of JSON schemas) and the instance's ``id`` and ``tool``. ``datasets`` needs one
type per column, and every function has its own arguments and parameters: tool-call
``arguments`` and each tool schema are therefore ``datasets.Json`` values (stored as JSON text,
read back as dicts), so no row is padded with another row's keys. A message read back has every
struct field, absent ones as ``None``: transformers' chat templating drops ``None`` keys, and so
does :func:`from_messages_dataset`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Mapping

from .chat import converted_rows, from_messages, to_messages

SPLITS = ("train", "eval")


def messages_features():
    """The ``datasets.Features`` of the messages + tools dataset."""
    from datasets import Features, Json, List, Value

    call = {"id": Value("string"), "type": Value("string"),
            "function": {"name": Value("string"), "arguments": Json()}}
    message = {"role": Value("string"), "content": Value("string"), "tool_calls": List(call),
               "tool_call_id": Value("string"), "name": Value("string")}
    return Features({"messages": List(message), "tools": List(Json()), "id": Value("string"),
                     "tool": Value("string")})


def to_messages_dataset(splits: Mapping[str, Iterable[dict]], records):
    """A ``DatasetDict`` with one split per entry of ``splits`` (project instances)."""
    from datasets import Dataset, DatasetDict

    features = messages_features()
    out = {}
    for split, instances in splits.items():
        rows = [{**row, "id": inst.get("id") or "", "tool": inst["tool"]}
                for inst, row in converted_rows(instances, records, to_messages)]
        out[split] = (Dataset.from_list(rows, features=features) if rows
                      else Dataset.from_dict({k: [] for k in features}, features=features))
    return DatasetDict(out)


def save_messages_dataset(dataset_dict, path: str | Path) -> Path:
    """``save_to_disk`` with one shard per split (an empty split too), replacing ``path`` whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset_dict.save_to_disk(str(tmp), num_shards={split: 1 for split in dataset_dict})
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def from_messages_dataset(dataset_or_path, *, records=None) -> dict[str, list[dict]]:
    """Project instances of each split of a messages + tools ``DatasetDict`` (or its folder)."""
    from datasets import DatasetDict, load_from_disk

    dd = dataset_or_path if isinstance(dataset_or_path, DatasetDict) else load_from_disk(str(dataset_or_path))
    return {split: [from_messages(row, index=i, split=split, records=records) for i, row in enumerate(ds)]
            for split, ds in dd.items()}
