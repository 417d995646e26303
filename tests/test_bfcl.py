"""BFCL offline: functions as tool records, episodes to decoded calls, and BFCL's own checker on
hand-written decoded outputs, right and wrong (irrelevance and parallel included)."""
from __future__ import annotations

import hashlib
import json

import pytest

from tests.doubles import ScriptedModel
from toolalpaca_utils.openapi import function_schemas, record_spec, validate_spec


@pytest.fixture(scope="module")
def bfcl():
    """bfcl-eval in its own folder: installed by `make setup`; installed here on first use (PyPI
    once), nothing fetched when it is already there."""
    from toolalpaca_utils import bfcl

    bfcl.ensure_installed()
    return bfcl


@pytest.fixture(scope="module")
def questions(bfcl):
    return {c: bfcl.load_category(c) for c in bfcl.CATEGORIES}


def _item(q, decoded):
    return {"id": q.id, "category": q.category, "function": q.functions, "decoded": decoded, "answer": q.answer}


def _right_call(q):
    """A decoded call built from the first option of each argument of the first possible answer."""
    calls = []
    for call in q.answer:
        (name, args), = call.items()
        calls.append({name: {k: v[0] for k, v in args.items() if v and v[0] != ""}})
    return calls


def test_every_function_of_every_category_is_a_valid_tool_record(bfcl, questions):
    # a sample per category keeps the test short; the whole 1240 pass too (6 s)
    for category, qs in questions.items():
        for q in qs[:15]:
            record = bfcl.record_from_functions(q.functions)
            assert validate_spec(record_spec(record)) == []
            schemas = function_schemas(record_spec(record))
            assert set(schemas) == {f["name"] for f in q.functions}, q.id


def test_bfcl_types_become_json_schema(bfcl):
    from toolalpaca_utils.bfcl.records import json_schema

    schema = json_schema({"type": "dict", "properties": {
        "x": {"type": "float"}, "pair": {"type": "tuple", "items": {"type": "integer"}},
        "opts": {"type": "dict", "properties": {"k": {"type": "any"}}, "required": []},
        "tags": {"type": "array"}}, "required": ["x"]})
    props = schema["properties"]
    assert schema["type"] == "object" and schema["required"] == ["x"]
    assert props["x"] == {"type": "number"} and props["pair"] == {"type": "array", "items": {"type": "integer"}}
    assert props["opts"] == {"type": "object", "properties": {"k": {}}}  # no empty "required" (OpenAPI 3.0)
    assert props["tags"] == {"type": "array", "items": {}}


def test_bfcl_checker_on_hand_written_outputs(bfcl, questions, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the checker's scratch project root goes here
    simple, par = questions["simple_python"][0], questions["parallel"][0]
    pm, irr = questions["parallel_multiple"][0], questions["irrelevance"][0]
    right_simple, right_par, right_pm = _right_call(simple), _right_call(par), _right_call(pm)
    (name, args), = right_simple[0].items()
    wrong_value = [{name: {**args, next(iter(args)): "definitely wrong"}}]
    cases = [
        (_item(simple, right_simple), True),
        (_item(simple, wrong_value), False),
        (_item(simple, []), False),                                   # no call: wrong
        (_item(par, list(reversed(right_par))), True),                # parallel: any order
        (_item(par, right_par[:1]), False),                           # one call missing
        (_item(pm, right_pm), True),
        (_item(irr, []), True),                                       # irrelevance: nothing called
        (_item(irr, [{irr.functions[0]["name"]: {}}]), False),
    ]
    result = bfcl.check([item for item, _ in cases])
    assert [v["valid"] for v in result["verdicts"]] == [want for _, want in cases]
    summary = result["summary"]
    assert summary["simple_python"] == pytest.approx(1 / 3) and summary["parallel"] == pytest.approx(0.5)
    # BFCL's own non-live summary: the unweighted mean over the AST categories that ran
    assert summary["non_live_ast_summary"] == pytest.approx((1 / 3 + 0.5 + 1.0) / 3)
    assert not list(tmp_path.iterdir())  # BFCL's scratch root is removed with the checker


def test_episode_rows_decode_parallel_calls_and_are_scored(bfcl, questions):
    from toolalpaca_utils.bfcl.episodes import run_model

    par = questions["parallel"][0]
    calls = _right_call(par)
    steps = [f"Thought: call\nAction: {name}\nAction Input: {json.dumps(args)}" for c in calls for name, args in c.items()]
    model = ScriptedModel([*steps, "Thought: done\nFinal Answer: done"])
    rows = run_model(model, [par], name="scripted", mode="free", max_steps=len(steps) + 1, progress=False)
    assert rows[0]["decoded"] == calls and rows[0]["stop_reason"] == "final answer"
    irr = questions["irrelevance"][0]
    calls_it = ScriptedModel([f"Thought: x\nAction: {irr.functions[0]['name']}\nAction Input: {{\"bad\": 1}}",
                              "Thought: done\nFinal Answer: no"])
    irr_rows = run_model(calls_it, [irr], name="scripted", mode="free", progress=False)
    assert irr_rows[0]["decoded"] and irr_rows[0]["steps"][0]["status"] == 400  # rejected, still a call
    scored, summary = bfcl.score_rows(rows + irr_rows, {q.id: q for q in (par, irr)})
    assert [r["valid"] for r in scored] == [True, False]
    assert summary == {"parallel": 100.0, "irrelevance": 0.0, "non_live_ast_summary": 100.0}


def test_cpu_subset_is_seeded_and_fixed(bfcl, questions):
    from toolalpaca_utils.profiles import load_profile

    cpu = load_profile("cpu", "07_bfcl")
    n, seed = cpu["n_per_category"], cpu["seed"]
    picked = {c: [q.id for q in bfcl.subset(qs, n, seed)] for c, qs in questions.items()}
    assert all(len(ids) == n for ids in picked.values())
    assert picked == {c: [q.id for q in bfcl.subset(qs, n, seed)] for c, qs in questions.items()}
    assert picked != {c: [q.id for q in bfcl.subset(qs, n, seed + 1)] for c, qs in questions.items()}
    # the very questions of the cpu book, pinned: a change of the draw (or of BFCL's files) shows here
    digest = hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]
    assert digest == PINNED_CPU_SUBSET, picked
    assert bfcl.subset(questions["parallel"], 0, seed) == questions["parallel"]  # 0 = all (gpu profile)


PINNED_CPU_SUBSET = "8c114613cf26962d"  # sha256 of the cpu profile's ids per category (seed 0, 3 each)


def test_missing_install_names_the_make_target(monkeypatch, tmp_path):
    from toolalpaca_utils import bfcl

    monkeypatch.setenv("TOOLALPACA_BFCL_HOME", str(tmp_path))
    with pytest.raises(bfcl.BfclMissingError, match="make setup-bfcl"):
        bfcl.load_category("simple_python")
    with pytest.raises(bfcl.BfclMissingError, match="make setup-bfcl"):
        bfcl.ensure_installed(download=False)  # offline: never fetched unless asked
