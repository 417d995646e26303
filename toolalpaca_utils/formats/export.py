"""All three formats of a corpus folder at once, and one instance shown in each (for the notebook)."""
from __future__ import annotations

import json
from pathlib import Path

from ..corpus import load_split, load_tools
from .chat import to_messages, to_openai, write_openai_jsonl
from .dataset import SPLITS, save_messages_dataset, to_messages_dataset
from .toolalpaca import toolalpaca_records, write_toolalpaca

FORMATS_DIR = "formats"


def export_all(corpus_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the train and eval splits of a corpus in every format; return the paths::

        <out>/messages/              DatasetDict (train, eval) of messages + tools (TRL SFTTrainer)
        <out>/openai_{train,eval}.jsonl      OpenAI chat fine-tuning JSONL with tools
        <out>/toolalpaca_{train,eval}.json   tool records with Instances (the ToolAlpaca release)

    ``out_dir`` defaults to ``<corpus_dir>/formats``.
    """
    corpus_dir = Path(corpus_dir)
    out = Path(out_dir) if out_dir is not None else corpus_dir / FORMATS_DIR
    out.mkdir(parents=True, exist_ok=True)
    records = load_tools(corpus_dir)
    splits = {split: load_split(corpus_dir, split) for split in SPLITS}
    paths = {"messages": save_messages_dataset(to_messages_dataset(splits, records), out / "messages")}
    for split, instances in splits.items():
        paths[f"openai_{split}"] = write_openai_jsonl(out / f"openai_{split}.jsonl", instances, records)
    for split, instances in splits.items():
        paths[f"toolalpaca_{split}"] = write_toolalpaca(out / f"toolalpaca_{split}.json", instances, records)
    return paths


def _example(corpus_dir: Path, instance_id: str | None) -> dict | None:
    instances = [i for split in SPLITS for i in load_split(corpus_dir, split)]
    if instance_id is not None:
        return next((i for i in instances if i.get("id") == instance_id), None)
    # the first with a call and an answer, else the first at all
    return next((i for i in instances if i.get("steps") and i.get("final")), instances[0] if instances else None)


def example_in_each_format(corpus_dir: str | Path, instance_id: str | None = None) -> dict[str, str]:
    """One instance of a corpus (``instance_id``, or the first train instance with a call and an
    answer) as the corpus stores it and in each format, as pretty-printed JSON keyed by a title.
    The OpenAI line is indented here (the file holds it on one line); the ToolAlpaca record shows
    only its instance fields (the others are the tool record of ``tools.json``). ``{}`` when the
    corpus has no train or eval instance."""
    corpus_dir = Path(corpus_dir)
    instance = _example(corpus_dir, instance_id)
    if instance is None:
        return {}
    records = load_tools(corpus_dir)
    record = records[instance["tool"]]
    ta = toolalpaca_records([instance], records)[0]
    shown = {"Name": ta["Name"], "...": "(the tool record's other fields)",
             **{k: ta[k] for k in ("Instructions", "Golden_Answers", "Instances")}}
    views = {
        f"project corpus ({instance.get('split', 'train')}.jsonl)": instance,
        "messages + tools (formats/messages/, TRL SFTTrainer)": to_messages(instance, record),
        "OpenAI fine-tuning JSONL (formats/openai_<split>.jsonl)": to_openai(instance, record),
        "ToolAlpaca Instances (formats/toolalpaca_<split>.json)": shown,
    }
    return {title: json.dumps(value, ensure_ascii=False, indent=2) for title, value in views.items()}
