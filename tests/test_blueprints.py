"""Code-written training tools (toolset.blueprints): parsed, valid, unlike the real tools, and
their calls and requests drawn by code say every value; tool_choice="required" in an episode."""
from __future__ import annotations

import json
import random

import pytest

from toolalpaca_utils.agents import Episode, instruction_problems, missing_values
from toolalpaca_utils.openapi import function_schemas, record_spec, validate_arguments, validate_spec
from toolalpaca_utils.react import GET_DETAILS
from toolalpaca_utils.realtools import real_tool_records
from toolalpaca_utils.corpus import load_split
from toolalpaca_utils.simulation import SimulationConfig, simulate, split_tools
from toolalpaca_utils.tools import load_toolset, save_toolset
from toolalpaca_utils.toolset import blueprint_records, draw_request, parse_blueprints

from doubles import ScriptedModel, fixed_executor


@pytest.fixture(scope="module")
def records():
    return blueprint_records(100)


def test_every_blueprint_is_a_valid_tool_with_three_or_four_functions(records):
    assert len(records) == len(parse_blueprints()) >= 20
    for r in records:
        spec = record_spec(r)
        assert validate_spec(spec) == [], r["Name"]
        assert 2 <= len(r["Function_Projection"]) <= 4, r["Name"]
        assert r["source"] == "blueprint" and set(r["blueprint"]) == set(r["Function_Projection"])
        assert not any(ask in r["NLDocumentation"] for fn in r["blueprint"].values() for ask in fn["asks"])
    assert sum(len(r["Function_Projection"]) >= 3 for r in records) >= 0.8 * len(records)


def test_no_blueprint_function_is_a_real_tool_function(records):
    """The real tools are the test set: none of their functions is trained on under its name."""
    real = {f for r in real_tool_records() for f in r["Function_Projection"]}
    assert not real & {f for r in records for f in r["Function_Projection"]}
    assert not {r["Name"] for r in real_tool_records()} & {r["Name"] for r in records}


def test_drawn_requests_are_schema_valid_and_say_every_value(records):
    rng = random.Random(0)
    frames = set()
    for r in records:
        schemas = function_schemas(record_spec(r))
        for _ in range(8):
            name, values, text, frame = draw_request(r, rng)
            args = {k: v.value for k, v in values.items()}
            assert validate_arguments(schemas[name], args) == [], (r["Name"], text, args)
            assert missing_values(text, args) == [], (r["Name"], text, args)
            assert instruction_problems(text, r, args) == [], (r["Name"], text)
            assert "{" not in text and set(schemas[name]["required"]) <= set(args)
            if "start_date" in args and "end_date" in args:
                assert args["start_date"] <= args["end_date"], text
            frames.add(frame)
    assert len(frames) > 100  # many phrasings, none dominant


def test_n_and_seed_choose_a_subset_and_zero_means_none():
    assert blueprint_records(0) == []
    a, b = blueprint_records(5, seed=1), blueprint_records(5, seed=1)
    assert [r["Name"] for r in a] == [r["Name"] for r in b] and len(a) == 5


def test_a_malformed_blueprint_line_is_named():
    with pytest.raises(ValueError, match="parameter line not understood"):
        parse_blueprints("## T | Cat | d.\nfindThings: Find things.\n  query* strin: What\n  ? Find {query} now.\n")
    with pytest.raises(ValueError, match="must say"):
        parse_blueprints("## T | Cat | d.\nfindThings: Find things.\n  query* string: What\n  ? Find some things now.\n")


def test_blueprints_survive_the_toolset_files(records, tmp_path):
    paths = save_toolset(records[:3], [], tmp_path)
    back = load_toolset(tmp_path)
    assert [r["blueprint"] for r in back] == [r["blueprint"] for r in records[:3]]
    exported = json.loads(paths["export"].read_text())
    assert all("blueprint" not in r for r in exported)  # a project field, not the ToolAlpaca format


def test_simulation_uses_the_templates_for_blueprint_tools(records, tmp_path):
    model = ScriptedModel(['{"thought": "I have the response and can answer.", "final_answer": "It is 12."}'])
    cfg = SimulationConfig(instructions_per_tool=2, instructions_per_blueprint_tool=3, strategy="call-first",
                           mode="constrained", n_eval_tools=1, values="typed", request_fallback="bank",
                           executor="schema")
    simulate(model, records[:3], cfg, out_dir=tmp_path, progress=False)
    rows = [json.loads(line) for f in ("train.jsonl", "eval.jsonl") for line in (tmp_path / f).read_text().splitlines()]
    assert rows and all(r["request_source"] == "blueprint" and "#" in r["request_frame"] for r in rows)
    rejects = tmp_path / "rejects.jsonl"
    assert len(rows) + (len(rejects.read_text().splitlines()) if rejects.exists() else 0) == 9  # 3 a code-written tool
    assert cfg.instructions_for({"Name": "x"}) == 2  # the others keep instructions_per_tool
    assert all(missing_values(r["instruction"], r["sampled_call"][1]) == [] for r in rows)


def test_a_resumed_run_files_each_instance_in_its_tools_new_split(records, tmp_path):
    """More tools change the seeded tool-level split: a resumed run moves the kept instances of a
    tool that is now held out to the evaluation split (never left in training), without asking
    the teacher again, and drops those of a tool no longer in the toolset."""
    cfg = SimulationConfig(instructions_per_tool=1, instructions_per_blueprint_tool=1, strategy="call-first",
                           mode="constrained", n_eval_tools=1, values="typed", request_fallback="bank",
                           executor="schema", seed=0)
    names = [r["Name"] for r in records]
    first = 3
    held_out = split_tools(names[:first], 1, 0)[1]
    more = next(n for n in range(first + 1, len(names)) if split_tools(names[:n], 1, 0)[1] != held_out
                and set(split_tools(names[:n], 1, 0)[1]) <= set(names[:first]))

    def run(tools):
        model = ScriptedModel(['{"thought": "I have the response and can answer.", "final_answer": "It is 12."}'])
        simulate(model, tools, cfg, out_dir=tmp_path, progress=False, workers=1)
        return {split: {r["tool"] for r in load_split(tmp_path, split)} for split in ("train", "eval")}, model.calls

    before, _ = run(records[:first])
    assert before["eval"] == set(held_out)
    now_held_out = set(split_tools(names[:more], 1, 0)[1])
    after, calls = run(records[:more])
    assert after["eval"] == now_held_out and not after["train"] & now_held_out
    assert after["train"] | after["eval"] == set(names[:more])
    assert calls <= more - first  # one answer a new tool; the moved tool is not simulated again
    fewer, _ = run(records[:2])
    assert fewer["train"] | fewer["eval"] <= set(names[:2])
    # another held-out set is a resume too: the instances move, the teacher is not asked again
    (trained,) = fewer["train"]
    cfg.eval_tools, cfg.n_eval_tools = [trained], 0
    pinned, calls = run(records[:2])
    assert pinned == {"train": set(names[:2]) - {trained}, "eval": {trained}} and calls == 0


def test_tool_choice_required_makes_the_first_step_a_call_of_the_tools_own_functions(records):
    record = records[0]
    own = set(function_schemas(record_spec(record)))

    def actions(schema: dict) -> set:
        return {b["properties"].get("action", {}).get("const", "final answer") for b in schema["anyOf"]}

    required = Episode(record, "Find books about chess.", fixed_executor(200, "{}"), mode="constrained",
                       tool_choice="required")
    assert actions(required.request().schema) == own  # no final answer, no getDetails (asking the user)
    assert actions(required.schema) == own | {GET_DETAILS, "final answer"}  # later steps: every branch
    auto = Episode(record, "Find books about chess.", fixed_executor(200, "{}"), mode="constrained").request().schema
    assert actions(auto) == own | {GET_DETAILS, "final answer"}
    with pytest.raises(ValueError, match="tool_choice"):
        Episode(record, "Find books about chess.", fixed_executor(200, "{}"), tool_choice="always")
