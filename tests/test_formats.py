"""The corpus in the field's formats: messages + tools (TRL), OpenAI JSONL, ToolAlpaca Instances."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from toolalpaca_utils import formats
from toolalpaca_utils.corpus import load_split, load_tools
from toolalpaca_utils.formats import FormatError

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus_small"
TOOLALPACA = FIXTURES / "toolalpaca_tools.json"
SPLITS = ("train", "eval")


def _carried(instance: dict) -> tuple:
    """What every format carries: instruction, steps (thought, action, input, observation), answer."""
    steps = [(s["thought"], s["action"], s["action_input"], s["observation"]) for s in instance["steps"]]
    return instance["instruction"], steps, (instance["final"] or {}).get("answer")


def _corpus() -> dict[str, list[dict]]:
    return {split: load_split(CORPUS, split) for split in SPLITS}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """All formats of the small corpus (written outside the fixtures folder)."""
    return formats.export_all(CORPUS, tmp_path_factory.mktemp("formats"))


def test_export_all_writes_every_format(exported):
    assert set(exported) == {"messages", "openai_train", "openai_eval", "toolalpaca_train", "toolalpaca_eval"}
    assert all(p.exists() for p in exported.values())
    assert (exported["messages"] / "dataset_dict.json").is_file()


# ----------------------------------------------------------------------------- round trips
def test_messages_dataset_round_trip(exported):
    back = formats.from_messages_dataset(exported["messages"])
    for split, instances in _corpus().items():
        assert [i["id"] for i in back[split]] == [i["id"] for i in instances]
        assert [i["tool"] for i in back[split]] == [i["tool"] for i in instances]
        assert [_carried(i) for i in back[split]] == [_carried(i) for i in instances]
        # the ReAct texts were written in the ReAct layout: rebuilt identical
        assert [[s["text"] for s in i["steps"]] for i in back[split]] == [[s["text"] for s in i["steps"]] for i in instances]
        assert [i["final"] for i in back[split]] == [i["final"] for i in instances]


def test_openai_round_trip(exported):
    for split, instances in _corpus().items():
        lines = [json.loads(line) for line in exported[f"openai_{split}"].read_text().splitlines()]
        assert len(lines) == len(instances)
        for line in lines:
            assert set(line) == {"messages", "tools", "parallel_tool_calls"}
            calls = [c for m in line["messages"] for c in m.get("tool_calls", [])]
            assert calls and all(isinstance(c["function"]["arguments"], str) for c in calls)
            assert all("name" not in m for m in line["messages"] if m["role"] == "tool")
        back = formats.read_openai_jsonl(exported[f"openai_{split}"], split=split)
        assert [_carried(i) for i in back] == [_carried(i) for i in instances]
        assert [i["tool"] for i in back] == [i["tool"] for i in instances]  # named by the system message
        assert all(i["split"] == split and i["mode"] == "openai" for i in back)


def test_toolalpaca_round_trip_keeps_status_and_golden(exported):
    for split, instances in _corpus().items():
        back, records = formats.from_toolalpaca(exported[f"toolalpaca_{split}"], split=split)
        assert {r["Name"] for r in records} == {i["tool"] for i in instances}
        back_by_instruction = {i["instruction"]: i for i in back}
        assert [_carried(back_by_instruction[i["instruction"]]) for i in instances] == [_carried(i) for i in instances]
        for inst in instances:
            got = back_by_instruction[inst["instruction"]]
            assert [s["status"] for s in got["steps"]] == [s["status"] for s in inst["steps"]]
            assert got["golden"] == inst["golden"] and got["final"] == inst["final"]


def test_toolalpaca_fixture_import_export_import(tmp_path):
    instances, records = formats.from_toolalpaca(TOOLALPACA)
    assert [i["id"] for i in instances] == ["tiny-library-ta-1"]  # Length Converter has no Instances
    step = instances[0]["steps"][0]
    assert (step["thought"], step["action"], step["status"]) == ("I should look the book up.", "getBook", 200)
    assert step["observation"].startswith('{"isbn"') and instances[0]["golden"] == [
        {"Action": "getBook", "Action_Input": '{"isbn": "9780000000001"}'}]
    assert instances[0]["final"]["answer"] == "Yes, it is available."
    path = formats.write_toolalpaca(tmp_path / "out.json", instances, records)
    again, _records = formats.from_toolalpaca(path)
    assert again == instances
    original = json.loads(TOOLALPACA.read_text())[0]["Instances"]
    assert json.loads(path.read_text())[0]["Instances"] == original  # the same item, field for field


def test_a_step_that_is_not_a_call_travels_as_a_plain_reply():
    records = load_tools(CORPUS)
    inst = copy.deepcopy(load_split(CORPUS, "train")[3])
    inst["steps"].insert(0, {"text": "Thought: let me look\nAction: searchBooks\nAction Input: query=sea",
                             "thought": "let me look", "action": "searchBooks", "action_input": "query=sea",
                             "observation": "Error: 'Action Input' is not a JSON object.", "status": None,
                             "valid": False, "error": "'Action Input' is not a JSON object"})
    for to, back in ((formats.to_messages, formats.from_messages), (formats.to_openai, formats.from_openai)):
        row = to(inst, records[inst["tool"]])
        assert row["messages"][2] == {"role": "assistant", "content": inst["steps"][0]["text"]}
        assert row["messages"][3]["role"] == "user"
        got = back(row)
        assert _carried(got) == _carried(inst) and got["steps"][0]["text"] == inst["steps"][0]["text"]


# ----------------------------------------------------------------------------- the DatasetDict
def test_dataset_dict_has_messages_and_tools_and_loads(exported):
    from datasets import DatasetDict, Json, load_from_disk

    dd = load_from_disk(str(exported["messages"]))
    assert isinstance(dd, DatasetDict) and set(dd) == set(SPLITS)
    assert {"messages", "tools"} <= set(dd["train"].column_names)
    assert dd["train"].num_rows == 8 and dd["eval"].num_rows == 2
    assert dd["train"].features == dd["eval"].features
    assert isinstance(dd["train"].features["tools"].feature, Json)
    row = dd["train"][1]
    assert row["messages"][0]["role"] == "system" and row["messages"][1]["role"] == "user"
    call = row["messages"][2]["tool_calls"][0]
    assert call["function"]["arguments"] == {"query": "beekeeping", "limit": 3}  # a dict, as chat templates take it
    names = [t["function"]["name"] for t in row["tools"]]
    assert names == ["searchBooks", "getBookDetails", "getDetails"]
    assert row["tools"][0]["function"]["parameters"]["required"] == ["query"]  # no other row's keys padded in


TOOL_TEMPLATE = """{%- if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>
{% endif %}
{%- for m in messages %}<|{{ m.role }}|>{% if m.content %}{{ m.content }}{% endif %}
{%- if m.tool_calls %}{% for c in m.tool_calls %}<call>{{ c.function.name }} {{ c.function.arguments | tojson }}</call>{% endfor %}{% endif %}
{%- if m.role == 'tool' and m.name %} [{{ m.name }}]{% endif %}
{% endfor %}"""


def test_rows_render_with_a_tool_calling_chat_template(exported):
    from datasets import load_from_disk
    from transformers.utils.chat_template_utils import render_jinja_template

    row = load_from_disk(str(exported["messages"]))["train"][1]
    messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]  # as tokenizers do
    text = render_jinja_template([messages], tools=row["tools"], chat_template=TOOL_TEMPLATE)[0][0]
    assert '<call>searchBooks {"query": "beekeeping", "limit": 3}</call>' in text
    assert '"name": "getBookDetails"' in text and "[getBookDetails]" in text and "None" not in text


# ----------------------------------------------------------------------------- malformed records
def _openai_row(index: int = 1) -> dict:
    records = load_tools(CORPUS)
    inst = load_split(CORPUS, "train")[index]
    return formats.to_openai(inst, records[inst["tool"]])


def _broken(change) -> dict:
    row = _openai_row()
    change(row["messages"])
    return row


@pytest.mark.parametrize("change, field", [
    (lambda m: m[2]["tool_calls"][0]["function"].__setitem__("arguments", "{query: beekeeping"),
     "messages[2].tool_calls[0].function.arguments"),
    (lambda m: m[2]["tool_calls"][0]["function"].pop("arguments"), "messages[2].tool_calls[0].function.arguments"),
    (lambda m: m.pop(3), "messages[2].tool_calls[0].id"),                      # call without its tool message
    (lambda m: m[3].__setitem__("role", "function"), "messages[3].role"),      # unknown role
    (lambda m: m[3].pop("content"), "messages[3].content"),                    # missing field
    (lambda m: m[3].__setitem__("tool_call_id", "call_9"), "messages[3].tool_call_id"),
])
def test_malformed_chat_rows_name_instance_and_field(change, field):
    row = _broken(change)
    with pytest.raises(FormatError, match=r"instance #7") as err:
        formats.from_openai(row, index=7)
    assert err.value.field == field and field in str(err.value)
    row["id"] = "shelfsearch-02"
    with pytest.raises(FormatError, match=r"instance 'shelfsearch-02'"):
        formats.from_messages(row)


def test_malformed_openai_line_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_openai_row()) + "\n{not json\n")
    with pytest.raises(FormatError, match=r"instance #1 \(line 2 of bad.jsonl\)"):
        formats.read_openai_jsonl(path)


@pytest.mark.parametrize("change, field", [
    (lambda i: i.pop("instruction"), "instruction"),
    (lambda i: i["steps"][0].pop("action_input"), "steps[0].action_input"),
    (lambda i: i.__setitem__("final", {"text": "Thought: done"}), "final.answer"),
    (lambda i: i.__setitem__("tool", "NoSuchTool"), "tool"),
])
def test_malformed_instances_name_instance_and_field(change, field, tmp_path):
    records = load_tools(CORPUS)
    inst = copy.deepcopy(load_split(CORPUS, "train")[0])
    change(inst)
    for export in (lambda: formats.to_messages_dataset({"train": [inst]}, records),
                   lambda: formats.write_openai_jsonl(tmp_path / "never.jsonl", [inst], records),
                   lambda: formats.toolalpaca_records([inst], records)):
        with pytest.raises(FormatError, match="instance 'shelfsearch-01'") as err:
            export()
        assert err.value.field == field
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_malformed_toolalpaca_instance_names_instance_and_field():
    data = json.loads(TOOLALPACA.read_text())
    del data[0]["Instances"][0]["intermediate_steps"]
    with pytest.raises(FormatError, match="instance 'tiny-library-ta-1'") as err:
        formats.from_toolalpaca(data)
    assert err.value.field == "intermediate_steps"
    data = json.loads(TOOLALPACA.read_text())
    data[0]["Instances"][0]["intermediate_steps"][0] = ["getBook", "no observation pair"]
    with pytest.raises(FormatError, match=r"intermediate_steps\[0\]"):
        formats.from_toolalpaca(data)


# ----------------------------------------------------------------------------- the notebook helper
def test_example_in_each_format():
    views = formats.example_in_each_format(CORPUS)
    assert len(views) == 4 and all(isinstance(v, str) for v in views.values())
    decoded = [json.loads(v) for v in views.values()]
    assert decoded[0]["id"] == "shelfsearch-01"
    assert decoded[1]["messages"][2]["tool_calls"][0]["function"]["arguments"] == {
        "query": "Ursula K. Le Guin", "language": "fr"}
    assert decoded[3]["Instances"][0]["input"] == decoded[0]["instruction"]


def test_an_empty_corpus_exports_empty_files(tmp_path):
    (tmp_path / "tools.json").write_text((CORPUS / "tools.json").read_text())
    paths = formats.export_all(tmp_path)
    assert paths["openai_train"].read_text() == "" and json.loads(paths["toolalpaca_eval"].read_text()) == []
    assert formats.from_messages_dataset(paths["messages"]) == {"train": [], "eval": []}
    assert formats.example_in_each_format(tmp_path) == {}
