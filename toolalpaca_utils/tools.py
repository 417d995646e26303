"""Tool records on disk, shared by every stage.

A toolset directory (``runs/<profile>/toolset/``) holds:

* ``dataset/`` — a Hugging Face ``datasets`` dataset, one row per tool record. String fields are
  string columns; nested fields (``Function_Description``, ``Function_Projection`` and, for
  imported files, ``Instructions``, ``Golden_Answers``, ...) are stored as JSON text columns,
  listed in :data:`JSON_FIELDS`, and decoded again by :func:`load_toolset`;
* ``toolalpaca_tools.json`` — the same tools in the original ToolAlpaca format (a JSON list);
* ``rejects.jsonl`` — one line per catalogue entry that did not become a tool, with reasons.

:func:`import_toolalpaca` reads any ToolAlpaca-format tool file into records (and
:func:`records_from_toolalpaca` the same data already parsed);
:func:`export_toolalpaca` writes records back. Fields present in the file round-trip unchanged.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from . import openapi
from .runs import read_jsonl, replace_text, write_jsonl

DATASET_DIR = "dataset"
EXPORT_FILE = "toolalpaca_tools.json"
REJECTS_FILE = "rejects.jsonl"

#: Fields of the original format, in its order (the tool part plus the data that rides along).
TOOLALPACA_FIELDS = openapi.RECORD_FIELDS + (
    "Instructions", "Golden_Answers", "Authentication", "external_tools", "Instances",
)
#: Fields that are not strings and are stored as JSON text in the dataset.
JSON_FIELDS = ("Function_Description", "Function_Projection", "Instructions", "Golden_Answers",
               "Authentication", "external_tools", "Instances")
#: Project fields (not in the original format).
PROJECT_FIELDS = ("source", "base_url", "blueprint")
_ABSENT = "__absent__"  # JSON-column marker: the record did not have this field


class ToolRecordError(ValueError):
    """A file or record that is not a usable ToolAlpaca tool record."""


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------
def _columns(records: list[dict]) -> list[str]:
    cols = list(openapi.RECORD_FIELDS) + list(PROJECT_FIELDS)
    for r in records:
        cols += [k for k in r if k not in cols]
    return cols


def _json_columns(records: list[dict]) -> list[str]:
    """Columns stored as JSON text: the known nested fields, and any field that holds a
    non-string value in some record."""
    return [c for c in _columns(records) if c in JSON_FIELDS or any(
        c in r and not (isinstance(r[c], str) or r[c] is None) for r in records)]


def records_to_table(records: list[dict]) -> tuple[dict[str, list], list[str]]:
    """Column-wise table of records and the names of its JSON-text columns. A field missing
    from a record is stored as a marker, so that loading leaves it missing again."""
    json_cols = _json_columns(records)
    table: dict[str, list] = {}
    for c in _columns(records):
        if c in json_cols:
            table[c] = [json.dumps(r[c], ensure_ascii=False) if c in r else _ABSENT for r in records]
        else:
            table[c] = [r[c] if c in r else _ABSENT for r in records]
    return table, json_cols


def save_toolset(records: list[dict], rejects: Iterable[dict] = (), out_dir: str | Path = ".") -> dict[str, Path]:
    """Write the dataset, the ToolAlpaca export and the rejects table; return their paths."""
    from datasets import Dataset, Features, Value

    records = [dict(r) for r in records]
    names = [r.get("Name") for r in records]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ToolRecordError(f"tool names must be unique in a toolset; repeated: {dup}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, json_cols = records_to_table(records)
    if not records:
        table = {c: [] for c in _columns([])}
    # every column is text (JSON text for nested fields); an all-None column stays a string column
    ds = Dataset.from_dict(table, features=Features({c: Value("string") for c in table}))
    ds.info.description = json.dumps({"format": "toolalpaca-records", "json_columns": json_cols})
    ds_path = out_dir / DATASET_DIR
    tmp = out_dir / (DATASET_DIR + ".tmp")
    _rmtree(tmp)
    ds.save_to_disk(str(tmp), num_shards=1)  # one shard even when empty (0 shards cannot be loaded)
    _rmtree(ds_path)
    os.replace(tmp, ds_path)
    export_path = export_toolalpaca(records, out_dir / EXPORT_FILE)
    rejects_path = write_jsonl(out_dir / REJECTS_FILE, rejects)
    return {"dataset": ds_path, "export": export_path, "rejects": rejects_path}


def _rmtree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


def load_toolset(path_or_profile: str | Path) -> list[dict]:
    """Tool records from a toolset directory, its ``dataset/``, a ToolAlpaca JSON file, or a
    profile name (``"tiny"``, ``"cpu"``, ...: ``runs/<profile>/toolset/``)."""
    from datasets import load_from_disk

    path = Path(path_or_profile)
    if not path.exists() and os.sep not in str(path_or_profile) and not str(path_or_profile).endswith(".json"):
        from .runs import require_stage

        path = require_stage(str(path_or_profile), "toolset")
    if path.is_file():
        return import_toolalpaca(path)
    if (path / DATASET_DIR).is_dir():
        path = path / DATASET_DIR
    if not (path / "dataset_info.json").is_file() and not (path / "state.json").is_file():
        raise ToolRecordError(f"{path} holds no saved toolset (expected a `{DATASET_DIR}/` from save_toolset)")
    ds = load_from_disk(str(path))
    try:
        json_cols = set(json.loads(ds.info.description or "{}").get("json_columns") or [])
    except json.JSONDecodeError:
        json_cols = set()
    json_cols |= set(JSON_FIELDS) & set(ds.column_names)
    records = []
    for row in ds:
        rec = {}
        for c, v in row.items():
            if v == _ABSENT:
                continue
            rec[c] = json.loads(v) if c in json_cols and isinstance(v, str) else v
        records.append(rec)
    return records


# --------------------------------------------------------------------------------------------
# the original format
# --------------------------------------------------------------------------------------------
def import_toolalpaca(path: str | Path, *, source: str = "import") -> list[dict]:
    """Records from a ToolAlpaca-format file (a JSON list of tool objects).

    Every field in the file is kept as it is. Derived fields a file lacks
    (``NLDocumentation``, ``Function_Description``, ``Function_Projection``) are derived from
    ``Documentation`` by code; ``source`` is set to ``"import"`` unless the record has one.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ToolRecordError(f"{path} is not JSON: {exc}") from None
    return records_from_toolalpaca(data, where=str(path), source=source)


def records_from_toolalpaca(data, *, where: str = "data", source: str = "import") -> list[dict]:
    """Records from already-parsed ToolAlpaca-format data (a list of tool objects, or one), as
    :func:`import_toolalpaca` makes them; ``where`` names the data in error messages."""
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ToolRecordError(f"{where}: expected a JSON list of tool records, got {type(data).__name__}")
    records = []
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise ToolRecordError(f"{where}: item {i} is {type(raw).__name__}, not a tool object")
        missing = [k for k in ("Name", "Documentation") if k not in raw]
        if missing:
            raise ToolRecordError(f"{where}: tool {i} ({raw.get('Name', '?')}) lacks {missing}")
        rec = dict(raw)
        if not all(k in rec for k in ("NLDocumentation", "Function_Description", "Function_Projection")):
            spec = openapi.record_spec(rec)
            derived = openapi.record_from_spec(
                spec, name=rec["Name"], description=rec.get("Description", ""), category=rec.get("Category", ""))
            for k in ("NLDocumentation", "Function_Description", "Function_Projection"):
                rec.setdefault(k, derived[k])
        for k in ("Description", "Link", "Category", "Introduction", "Functions"):
            rec.setdefault(k, "")
        rec.setdefault("source", source)
        rec.setdefault("base_url", None)
        records.append(rec)
    return records


def to_toolalpaca(record: dict, *, include_project_fields: bool = False) -> dict:
    """One record in the original format: its fields in the record's own order (an imported
    record keeps its file's order), without the project fields unless asked."""
    return {k: v for k, v in record.items() if include_project_fields or k not in PROJECT_FIELDS}


def export_toolalpaca(records: Iterable[dict], path: str | Path, *, include_project_fields: bool = False) -> Path:
    """Write records as a ToolAlpaca-format JSON list (atomically)."""
    data = [to_toolalpaca(r, include_project_fields=include_project_fields) for r in records]
    return replace_text(path, json.dumps(data, ensure_ascii=False, indent=2))


def read_rejects(path: str | Path) -> list[dict]:
    """The rejects table of a toolset directory (or a ``rejects.jsonl`` path)."""
    path = Path(path)
    if path.is_dir():
        path = path / REJECTS_FILE
    return read_jsonl(path)


def combine_records(*groups: Iterable[dict]) -> tuple[list[dict], list[str]]:
    """Concatenate groups of records, keeping the first record of each name; returns the
    records and the names that were skipped as repeats (e.g. a catalogue API whose name a
    real tool already uses, when real tools come first)."""
    out: list[dict] = []
    seen: set[str] = set()
    skipped: list[str] = []
    for group in groups:
        for r in group:
            if r["Name"] in seen:
                skipped.append(r["Name"])
                continue
            seen.add(r["Name"])
            out.append(r)
    return out, skipped
