"""The second prompt format (issue 21, part 3, training side): "chat" renders an instance as the
tool-calling chat of the training template (tools in the system turn, ``<tool_call>`` calls,
``tool`` turns) and labels exactly the assistant turns, as "react" does for the ReAct text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolalpaca_utils.corpus import load_split, load_tools
from toolalpaca_utils.formats.common import call_arguments
from toolalpaca_utils.training import IGNORE_INDEX, TrainConfig, build_example, build_examples

FIXTURE = Path(__file__).parent / "fixtures" / "corpus_small"
END = "<|im_end|>"


def loss_runs(tokenizer, ex) -> list[str]:
    runs, cur = [], []
    for tok, lab in zip(ex["input_ids"], ex["labels"]):
        if lab != IGNORE_INDEX:
            assert lab == tok
            cur.append(tok)
        elif cur:
            runs.append(cur)
            cur = []
    return [tokenizer.decode(r) for r in runs + ([cur] if cur else [])]


def expected_turns(inst: dict) -> list[str]:
    """What the student must write in the chat format, written out by hand from the instance."""
    out = []
    for step in inst["steps"]:
        args = call_arguments(step)
        if args is None:
            out.append(step["text"] + END)
            continue
        call = f'<tool_call>{{"name": "{step["action"]}", "arguments": {json.dumps(args, ensure_ascii=False)}}}</tool_call>'
        out.append((f"{step['thought']}\n" if step["thought"] else "") + call + END)
    return out + ([inst["final"]["answer"] + END] if inst.get("final") else [])


def test_chat_format_labels_exactly_the_assistant_turns(tokenizer):
    records = load_tools(FIXTURE)
    for inst in load_split(FIXTURE, "train") + load_split(FIXTURE, "eval"):
        ex = build_example(tokenizer, records[inst["tool"]], inst, 4096, prompt_format="chat")
        assert loss_runs(tokenizer, ex) == expected_turns(inst), inst["id"]
        text = tokenizer.decode(ex["input_ids"])
        assert "<tools>" in text and "<|im_start|>tool\n" in text and "Action Input:" not in text
        assert ex["n_turns"] == len(expected_turns(inst)) and ex["drop_reason"] is None
        assert 0 < ex["prefix_len"] < ex["length"]        # the system turn (tools) is shared per tool


def test_chat_format_is_cut_after_a_whole_turn(tokenizer):
    records = load_tools(FIXTURE)
    inst = max(load_split(FIXTURE, "train"), key=lambda i: len(i["steps"]))
    full = build_example(tokenizer, records[inst["tool"]], inst, 4096, prompt_format="chat")
    short = build_example(tokenizer, records[inst["tool"]], inst, full["length"] - 5, prompt_format="chat")
    assert short["n_turns_kept"] == full["n_turns"] - 1 and short["n_truncated"] > 5
    assert tokenizer.decode(short["input_ids"]).endswith(END)
    assert loss_runs(tokenizer, short) == expected_turns(inst)[:-1]


def test_the_two_formats_differ_only_in_layout(tokenizer):
    records = load_tools(FIXTURE)
    train = load_split(FIXTURE, "train")
    react, _ = build_examples(tokenizer, records, train, 4096)
    chat, _ = build_examples(tokenizer, records, train, 4096, prompt_format="chat")
    assert [e["n_turns"] for e in react] == [e["n_turns"] for e in chat]
    assert all(r["input_ids"] != c["input_ids"] for r, c in zip(react, chat))


def test_an_unknown_prompt_format_is_refused(tokenizer):
    records = load_tools(FIXTURE)
    inst = load_split(FIXTURE, "train")[0]
    with pytest.raises(ValueError, match="prompt_format"):
        build_example(tokenizer, records[inst["tool"]], inst, 4096, prompt_format="xml")
    with pytest.raises(ValueError, match="prompt_format"):
        TrainConfig(prompt_format="xml")
