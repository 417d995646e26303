"""Stage 4: metrics, eval-set loaders, and an end-to-end run against the real tools service."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolalpaca_utils.agents import Step, Trajectory
from toolalpaca_utils.evaluation import (
    METRICS, EvalItem, agreement_table, arguments_match, by_tool, evaluate, items_from_real, items_from_toolalpaca_file,
    judge, score,
)
from toolalpaca_utils.openapi import build_spec
from toolalpaca_utils.runs import read_jsonl

GOLD = [{"Action": "getWeather", "Action_Input": '{"city": "Oslo", "days": 3}'},
        {"Action": "getAlerts", "Action_Input": '{"region": "${region from getWeather}"}'}]


def step(action, inp, status=200, valid=True, error=None):
    return Step(text=f"Action: {action}", thought="", action=action, action_input=json.dumps(inp) if isinstance(inp, dict) else inp,
                observation="o", status=status, valid=valid, error=error)


def traj(*steps, answer="Sunny, no alerts."):
    t = Trajectory(steps=list(steps), final={"text": "Final Answer: x", "answer": answer} if answer else None,
                   stop_reason="final answer" if answer else "max steps")
    return t


def test_arguments_match_normalises_and_allows_placeholders_and_extras():
    assert arguments_match('{"city": "Oslo", "days": 3}', {"city": " oslo ", "days": "3.0", "extra": 1})
    assert not arguments_match('{"city": "Oslo"}', {"city": "Bergen"})
    assert not arguments_match('{"city": "Oslo"}', {})
    assert arguments_match('{"region": "${region from getWeather}"}', {"region": "north"})
    assert not arguments_match('{"region": "${x}"}', {})
    assert not arguments_match("not json", {"a": 1})


def test_score_all_correct_with_a_getdetails_detour():
    t = traj(step("getWeather", {"city": "Oslo", "days": 3}), step("getDetails", {"Question": "region?"}),
             step("getAlerts", {"region": "north"}))
    m = score(t, GOLD)
    assert all(m[k] for k in METRICS) and m["failure"] == "ok"


def test_score_wrong_order_wrong_args_no_answer():
    wrong_order = score(traj(step("getAlerts", {"region": "n"}), step("getWeather", {"city": "Oslo", "days": 3})), GOLD)
    assert not wrong_order["api_match"] and not wrong_order["overall"] and wrong_order["failure"] == "wrong API"
    wrong_args = score(traj(step("getWeather", {"city": "Rome", "days": 3}), step("getAlerts", {"region": "n"})), GOLD)
    assert wrong_args["api_match"] and not wrong_args["process_correct"] and wrong_args["failure"] == "wrong arguments"
    no_answer = score(traj(step("getWeather", {"city": "Oslo", "days": 3}), step("getAlerts", {"region": "n"}),
                           answer=None), GOLD)
    assert no_answer["process_correct"] and not no_answer["response_given"] and no_answer["failure"] == "no answer"


def test_score_unparseable_and_crashed_count_as_failures():
    bad = Step("garbage", "", None, "", "Error", None, False, "no 'Action:'")
    m = score(traj(bad, answer=None), GOLD)
    assert not m["well_formed"] and m["failure"] == "unparseable"
    crashed = score(None, GOLD)
    assert not any(crashed[k] for k in METRICS) and crashed["failure"] == "crashed"


ARGS = st.one_of(st.text(max_size=30),
                st.dictionaries(st.sampled_from(["city", "days", "region"]), st.one_of(st.text(max_size=8), st.integers())))
STEPS = st.lists(st.tuples(st.sampled_from([None, "getWeather", "getAlerts", "getDetails", "rm"]), ARGS,
                           st.integers(0, 600), st.booleans()), max_size=5)


@settings(max_examples=200, deadline=None)
@given(STEPS, st.one_of(st.none(), st.text(max_size=20)))
def test_score_never_raises_and_always_classifies(raw_steps, answer):
    steps = [step(a, i, status, valid) for a, i, status, valid in raw_steps]
    m = score(traj(*steps, answer=answer), GOLD)
    assert set(METRICS) <= set(m) and m["failure"] in {"ok", "unparseable", "wrong API", "wrong arguments",
                                                      "no answer", "executor error", "model error"}
    assert m["overall"] == (m["process_correct"] and m["response_given"])


def test_toolalpaca_eval_file_loader(tmp_path):
    spec = build_spec("SkyCast", "Weather.", [{"name": "getWeather", "description": "Weather now.",
                                               "parameters": [{"name": "city", "type": "string", "required": True,
                                                               "description": "City"}]}])
    data = [{"Name": "SkyCast", "Description": "Weather.", "Category": "Weather", "Documentation": json.dumps(spec),
             "Instructions": ["Weather in Oslo?", "And in Rome?"],
             "Golden_Answers": [[{"Action": "getWeather", "Action_Input": '{"city": "Oslo"}'}],
                                [{"Action": "getWeather", "Action_Input": '{"city": "Rome"}'}]]}]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(data))
    items, records = items_from_toolalpaca_file(path)
    assert [i.instruction for i in items] == ["Weather in Oslo?", "And in Rome?"] and "SkyCast" in records
    path.write_text(json.dumps([{"Name": "X"}]))
    with pytest.raises(ValueError, match="lacks Documentation"):
        items_from_toolalpaca_file(path)


class GoldenPlayer:
    """A model that replays the golden calls then answers: the real tools must score it 100%."""

    def __init__(self, items):
        self.by_instruction = {i.instruction: i.golden for i in items}

    def chat(self, messages, *, schema=None, **gen):
        from toolalpaca_utils.llm import ChatResult

        golden = self.by_instruction[messages[1]["content"]]
        done = sum(1 for m in messages[2:] if m["role"] == "assistant")
        if done < len(golden):
            g = golden[done]
            return ChatResult(text=f"Thought: call it\nAction: {g['Action']}\nAction Input: {g['Action_Input']}")
        return ChatResult(text="Thought: done\nFinal Answer: here it is")


def test_real_tool_eval_with_golden_replay_scores_full_marks(realtools_url, tmp_path):
    items, records = items_from_real(realtools_url)
    items = items[:12]
    run = evaluate(GoldenPlayer(items), items, records, name="golden", out_path=tmp_path / "rows.jsonl",
                   progress=False, max_steps=4)
    summary = run.summary()
    assert summary["n"] == 12 and summary["overall"] == 100.0, [r["metrics"] for r in run.rows]
    again = evaluate(GoldenPlayer(items), items, records, name="golden", out_path=tmp_path / "rows.jsonl", progress=False)
    assert again.summary() == summary  # resumed from disk, nothing re-run
    # four episodes in flight: the same rows, in item order, each written once
    at_once = evaluate(GoldenPlayer(items), items, records, name="golden", out_path=tmp_path / "four.jsonl",
                       progress=False, max_steps=4, workers=4)
    assert [r["id"] for r in at_once.rows] == [it.id for it in items] and at_once.summary() == summary
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "four.jsonl")) == sorted(it.id for it in items)
    missing = evaluate(GoldenPlayer(items), [EvalItem("x", "NoSuchTool", "hi", [], "real")], records, name="g",
                       progress=False)
    assert missing.summary()["overall"] == 0.0 and missing.rows[0]["metrics"]["failure"] == "crashed"


def test_one_worker_runs_a_tool_s_items_one_after_another(realtools_url, tmp_path):
    """A tool's episodes go to one worker in a row (by_tool), so its engine replica reads the tool's
    documentation once; the rows still come back in item order, and a rerun resumes per item."""
    import threading

    items, records = items_from_real(realtools_url)
    items = items[:9]
    tool_of = {it.instruction: it.tool for it in items}

    class Recording(GoldenPlayer):
        order: list = []

        def chat(self, messages, **gen):
            self.order.append((threading.get_ident(), tool_of[messages[1]["content"]], messages[1]["content"]))
            return super().chat(messages, **gen)

    run = evaluate(Recording(items), items, records, name="golden", out_path=tmp_path / "rows.jsonl",
                   progress=False, max_steps=4, workers=2)
    assert [r["id"] for r in run.rows] == [it.id for it in items] and run.summary()["overall"] == 100.0
    for tool in {it.tool for it in items}:
        calls = [(thread, text) for thread, t, text in Recording.order if t == tool]
        assert len({thread for thread, _ in calls}) == 1, tool  # one worker
        texts = [text for _, text in calls]
        assert texts == sorted(texts, key=texts.index)  # each episode's calls in one run, not interleaved
        assert all(texts[i] == texts[i + 1] or texts[i + 1] not in texts[:i] for i in range(len(texts) - 1))
    groups = by_tool(items)
    assert [it for g in groups for it in g] == sorted(items, key=lambda it: it.tool)
    assert all(len({it.tool for it in g}) == 1 for g in groups)


@pytest.mark.slow
@pytest.mark.e2e
def test_tiny_end_to_end_with_the_embedded_model(llm_server, realtools_url, tmp_path):
    from toolalpaca_utils.llm import ChatClient, open_student

    items, records = items_from_real(realtools_url)
    items = items[:4]
    with open_student(replicas=1) as student:
        run = evaluate(student, items, records, name="base", max_steps=2, progress=False)
    assert run.summary()["n"] == 4 and all("failure" in r["metrics"] for r in run.rows)
    teacher = ChatClient(llm_server.base_url, llm_server.model, cache_dir=tmp_path / "cache")
    verdicts = judge(teacher, run.rows, records)
    assert len(verdicts) == 4 and all(v["process"] in ("Yes", "No", "Uncertain") for v in verdicts)
    table, agreement = agreement_table(run.rows, verdicts)
    assert 0.0 <= agreement <= 1.0 and table.values.sum() == 4


def test_spread_over_tools_keeps_every_tool():
    from toolalpaca_utils.evaluation import EvalItem, spread_over_tools

    items = [EvalItem(f"a{i}", "A", "q", [], "real") for i in range(6)] + \
            [EvalItem(f"b{i}", "B", "q", [], "real") for i in range(2)] + [EvalItem("c0", "C", "q", [], "real")]
    picked = spread_over_tools(items, 5)
    assert {it.tool for it in picked} == {"A", "B", "C"}
    assert [it.id for it in picked] == ["a0", "a1", "b0", "b1", "c0"]   # file order, round-robin choice
    assert spread_over_tools(items, 0) == items and spread_over_tools(items, 50) == items


def test_a_dying_student_endpoint_is_not_scored_as_the_model_failing(realtools_url, tmp_path):
    """The endpoint fails after a few episodes: the finished rows stay on disk, no row is written
    for the episodes it broke (they are not model errors), the evaluation stops with
    EndpointUnreachableError, and a rerun against a live endpoint finishes exactly the rest."""
    from toolalpaca_utils.endpoint import EndpointPolicy, EndpointUnreachableError
    from toolalpaca_utils.llm import LLMConnectionError

    items, records = items_from_real(realtools_url)
    items = items[:8]

    class Dying(GoldenPlayer):
        def __init__(self, items, alive_calls):
            super().__init__(items)
            self.calls, self.alive_calls = 0, alive_calls

        def chat(self, messages, **gen):
            self.calls += 1
            if self.calls > self.alive_calls:
                raise LLMConnectionError("connection refused (the server is gone)")
            return super().chat(messages, **gen)

    out = tmp_path / "rows.jsonl"
    policy = EndpointPolicy(retries=1, backoff=0.0, max_consecutive=2)
    with pytest.raises(EndpointUnreachableError, match="did not answer"):
        evaluate(Dying(items, alive_calls=6), items, records, name="g", out_path=out, progress=False, max_steps=4,
                 endpoint=policy)
    kept = read_jsonl(out)
    assert 0 < len(kept) < len(items) and all(r["metrics"]["overall"] for r in kept)  # no "model error" rows
    again = evaluate(GoldenPlayer(items), items, records, name="g", out_path=out, progress=False, max_steps=4)
    assert again.summary()["n"] == len(items) and again.summary()["overall"] == 100.0
    assert len(read_jsonl(out)) == len(items)  # each row written once


def test_an_evaluation_with_items_lost_here_and_there_is_never_handed_back_as_whole(realtools_url, tmp_path):
    """Two items' endpoint calls keep failing (timeouts on a busy machine), never enough in a row
    to stop: the evaluation still ends with EndpointUnreachableError naming them, not with an
    EvalRun over fewer items; the rows it finished are kept and a rerun scores exactly the two."""
    from toolalpaca_utils.endpoint import EndpointPolicy, EndpointUnreachableError
    from toolalpaca_utils.llm import LLMTimeoutError

    items, records = items_from_real(realtools_url)
    items = items[:6]
    lost = {items[1].id, items[4].id}

    class Busy(GoldenPlayer):
        def chat(self, messages, **gen):
            if any(it.id in lost and it.instruction == messages[1]["content"] for it in items):
                raise LLMTimeoutError("http://127.0.0.1:1/v1 did not answer within 120s")
            return super().chat(messages, **gen)

    out = tmp_path / "rows.jsonl"
    with pytest.raises(EndpointUnreachableError, match="incomplete: 1 work items") as info:  # one tool: its items run as one
        evaluate(Busy(items), items, records, name="g", out_path=out, progress=False, max_steps=4,
                 endpoint=EndpointPolicy(retries=1, backoff=0.0, max_consecutive=3))
    assert sorted(it.id for it in info.value.missing) == sorted(lost)
    assert all(i in str(info.value) for i in lost) and str(out) in str(info.value)
    assert sorted(r["id"] for r in read_jsonl(out)) == sorted(it.id for it in items if it.id not in lost)
    again = evaluate(GoldenPlayer(items), items, records, name="g", out_path=out, progress=False, max_steps=4)
    assert again.summary()["n"] == len(items) and len(read_jsonl(out)) == len(items)


def test_a_hanging_endpoint_costs_a_tool_one_timeout_a_try_not_one_an_item(realtools_url, tmp_path):
    """Every call times out (a server that hangs): a tool's unit stops at its first timeout, so the
    stage spends one timeout per try (two tries, and two in the stage's last round: 4), not one per
    item (12, as it did)."""
    from toolalpaca_utils.endpoint import EndpointPolicy, EndpointUnreachableError
    from toolalpaca_utils.llm import LLMTimeoutError

    items, records = items_from_real(realtools_url)
    tool_items = [it for it in items if it.tool == items[0].tool][:3]
    assert len(tool_items) == 3

    class Hanging(GoldenPlayer):
        calls = 0

        def chat(self, messages, **gen):
            Hanging.calls += 1
            raise LLMTimeoutError("http://127.0.0.1:1/v1 did not answer within 120s")

    with pytest.raises(EndpointUnreachableError) as info:
        evaluate(Hanging(tool_items), tool_items, records, name="g", out_path=tmp_path / "rows.jsonl",
                 progress=False, max_steps=4, endpoint=EndpointPolicy(retries=1, backoff=0.0, max_consecutive=3))
    assert Hanging.calls == 2 * 2
    assert sorted(it.id for it in info.value.missing) == sorted(it.id for it in tool_items)


def test_an_item_the_endpoint_always_fails_never_keeps_its_tool_s_others_from_running(realtools_url, tmp_path):
    """The first item of a tool gets a 5xx every time (a request of its own the server cannot take):
    it is tried after the others, which all run and are kept; it alone is missing."""
    from toolalpaca_utils.endpoint import EndpointPolicy, EndpointUnreachableError
    from toolalpaca_utils.llm import LLMRequestError

    items, records = items_from_real(realtools_url)
    tool_items = [it for it in items if it.tool == items[0].tool][:3]
    bad = tool_items[0]

    class Picky(GoldenPlayer):
        def chat(self, messages, **gen):
            if messages[1]["content"] == bad.instruction:
                raise LLMRequestError("server error", status_code=500)
            return super().chat(messages, **gen)

    out = tmp_path / "rows.jsonl"
    with pytest.raises(EndpointUnreachableError) as info:
        evaluate(Picky(tool_items), tool_items, records, name="g", out_path=out, progress=False, max_steps=4,
                 endpoint=EndpointPolicy(retries=1, backoff=0.0, max_consecutive=3))
    assert [it.id for it in info.value.missing] == [bad.id]
    assert sorted(r["id"] for r in read_jsonl(out)) == sorted(it.id for it in tool_items[1:])


def test_evaluate_grid_runs_every_model_decoding_and_set_and_resumes(realtools_url, tmp_path, monkeypatch):
    """The grid of notebook 04 (and of the corpus-levers benchmark): each model served once, one
    run per decoding and set, each written to its own file and resumed from it."""
    import contextlib

    import toolalpaca_utils.llm as llm
    from toolalpaca_utils.evaluation import evaluate_grid

    items, records = items_from_real(realtools_url)
    served = []

    @contextlib.contextmanager
    def fake_open_student(model, adapter, *, name, work_dir, **kwargs):
        served.append((name, adapter, kwargs))
        yield GoldenPlayer(items)

    monkeypatch.setattr(llm, "open_student", fake_open_student)
    sets = {"real": (items[:3], records), "again": (items[3:5], records)}
    runs, judged = evaluate_grid("m", {"base": None, "fine-tuned": "adapter"}, sets, out_dir=tmp_path,
                                 decodings=["free", "constrained"], progress=False, replicas=1)
    assert [n for n, _, _ in served] == ["base", "fine-tuned"] and served[0][2] == {"replicas": 1}
    assert [(s, r.name) for s, r in runs] == [
        (s, f"{m} · {d}") for m in ("base", "fine-tuned") for d in ("free", "constrained") for s in ("real", "again")]
    assert all(r.summary()["overall"] == 100.0 for _, r in runs) and judged == {}
    assert (tmp_path / "fine-tuned-constrained-again.jsonl").is_file()
    monkeypatch.setattr(GoldenPlayer, "chat", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-ran")))
    again, _ = evaluate_grid("m", {"base": None, "fine-tuned": "adapter"}, sets, out_dir=tmp_path,
                             decodings=["free", "constrained"], progress=False, replicas=1)
    assert [r.summary() for _, r in again] == [r.summary() for _, r in runs]  # every row from disk


@pytest.mark.slow
def test_grounded_decoding_on_the_real_engine_calls_only_with_values_the_request_says(chat_client, realtools_url):
    """The embedded llama.cpp server under a grounded first step, as JSON (the schema, what the
    book sends) and as ReAct text (the step's grammar, benchmarks/step_format.py): whatever
    the 135M model picks, it is a call of one of the tool's functions, and each free string value
    in it is one the request says (saying.readings), each number one it says, where one fits (a
    required date the request does not say stays free: react._bounded); with thought "documented" its thought is the
    documentation line of the function it calls; an unknown decoding is refused before any
    episode runs."""
    from toolalpaca_utils.agents import Episode
    from toolalpaca_utils.agents.episode import call_thought
    from toolalpaca_utils.openapi import function_schemas, record_spec
    from toolalpaca_utils.react import _fitting, parse_step
    from toolalpaca_utils.saying import readings
    from toolalpaca_utils.step_grammar import step_grammar

    items, records = items_from_real(realtools_url)
    items = [it for it in items if it.tool in ("Countries", "Cities", "PublicHolidays")][:4]
    for item in items:
        request = Episode(records[item.tool], item.instruction, None, mode="grounded", tool_choice="required").request()
        functions = function_schemas(record_spec(records[item.tool]))
        text = chat_client.chat(request.messages, schema=request.schema, grammar=step_grammar(request.schema),
                                **request.gen).text
        parsed = parse_step(text)
        as_json = chat_client.chat(request.messages, schema=request.schema, max_tokens=400, seed=0).parsed
        assert text.startswith("Thought: ") and parsed.kind == "action", text
        for action, args in ((parsed.action, parsed.action_input), (as_json["action"], as_json["action_input"])):
            props = functions[action].get("properties") or {}
            for key, value in args.items():
                if props[key].get("type") == "string" and "enum" not in props[key]:
                    said = readings(item.instruction)  # a value it says, where one fits (else the string is free)
                    assert value in said or not _fitting(props[key], said), (key, value, item.instruction)
                elif props[key].get("type") in ("integer", "number") and "enum" not in props[key]:
                    said = readings(item.instruction).numbers  # a number it says, where one fits
                    assert value in said or not _fitting(props[key], said), (key, value, item.instruction)
        documented = Episode(records[item.tool], item.instruction, None, mode="grounded", tool_choice="required",
                             thought="documented").request()  # the thought chosen is the call's own line
        step = chat_client.chat(documented.messages, schema=documented.schema, **documented.gen).parsed
        assert step["thought"] == call_thought(records[item.tool], step["action"]), step
    with pytest.raises(ValueError, match="must be one of"):
        evaluate(chat_client, items, records, name="x", mode="grounding", progress=False)


@pytest.mark.slow
def test_retrieved_decoding_on_the_real_engine_calls_the_retrieved_function(chat_client, realtools_url):
    """Decoding "retrieved" end to end (the embedded server, the real tools): whatever the 135M model
    writes, every episode's first call is of the function the retriever chose (here, a stand-in
    that picks each tool's last function), with grounded values."""
    from toolalpaca_utils.openapi import function_schemas, record_spec
    from toolalpaca_utils.saying import readings

    class LastFunction:
        def choose(self, record, request):
            return list(function_schemas(record_spec(record)))[-1]

    items, records = items_from_real(realtools_url)
    items = [it for it in items if it.tool in ("Countries", "Jokes")][:3]
    run = evaluate(chat_client, items, records, name="x", mode="retrieved", retriever=LastFunction(), max_steps=1,
                   progress=False, tool_choice="required", thought="documented")
    assert len(run.rows) == 3
    for item, row in zip(items, run.rows):
        first = row["steps"][0]
        assert first["action"] == LastFunction().choose(records[item.tool], item.instruction), row
        props = function_schemas(record_spec(records[item.tool]))[first["action"]].get("properties") or {}
        for key, value in json.loads(first["action_input"]).items():
            if props[key].get("type") == "string" and "enum" not in props[key]:
                assert value in readings(item.instruction), (key, value, item.instruction)
