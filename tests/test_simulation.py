"""Stage 2: the three agents and the simulation loop, against the real embedded model and the
real tools service; fuzzed model output; SIGKILL and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolalpaca_utils.agents import (
    Episode, Observation, SimulatedExecutor, dedupe, instruction_problems, missing_values, parse_numbered_list,
    run_assistant,
)
from toolalpaca_utils.corpus import SPLITS, load_split, read_jsonl
from toolalpaca_utils.openapi import build_spec, function_schemas, record_from_spec, record_spec, validate_arguments
from toolalpaca_utils.react import parse_step
from toolalpaca_utils.simulation import SimulationConfig, simulate, split_tools

from doubles import ScriptedModel, fixed_executor

REPO = Path(__file__).resolve().parent.parent

WEATHER_FUNCTIONS = [
    {"name": "getWeather", "description": "Current weather for a city.",
     "parameters": [{"name": "city", "type": "string", "required": True, "description": "City name"},
                    {"name": "units", "type": "string", "required": False, "description": "Unit system",
                     "enum": ["metric", "imperial"]}],
     "output": {"description": "The weather now", "properties": [
         {"name": "temperature", "type": "number", "description": "Degrees"},
         {"name": "summary", "type": "string", "description": "One line"}]}},
]


def weather_record():
    spec = build_spec("SkyCast", "Weather reports for cities.", WEATHER_FUNCTIONS)
    return record_from_spec(spec, name="SkyCast", description="Weather reports for cities.", category="Weather")


# ----------------------------------------------------------------------------- pure helpers
def test_dedupe_and_instruction_filters():
    kept, removed = dedupe(["What is the weather in Paris?", "what is the weather in paris", "Rain in Oslo tomorrow?"])
    assert kept == ["What is the weather in Paris?", "Rain in Oslo tomorrow?"] and removed == 1
    rec = weather_record()
    assert "names the API or a function" in instruction_problems("Call getWeather for Paris please", rec)
    assert "contains a placeholder" in instruction_problems("What is the weather in <city> today?", rec)
    assert instruction_problems("What is the weather like in Paris today?", rec) == []
    assert missing_values("Weather in Paris, metric please", {"city": "Paris", "units": "metric"}) == []
    assert missing_values("Weather in Rome", {"city": "Paris"}) == ["city"]
    assert parse_numbered_list("Sure!\n1. First one.\n2) Second\n- third\nno") == ["First one.", "Second", "third"]


def test_tool_level_split_is_seeded_and_disjoint():
    names = [f"T{i}" for i in range(10)]
    train, evals = split_tools(names, 3, seed=1)
    assert len(evals) == 3 and not set(train) & set(evals) and set(train) | set(evals) == set(names)
    assert split_tools(names, 3, seed=1) == (train, evals)
    with pytest.raises(ValueError):
        split_tools(["A", "B"], 2, seed=0)
    # pinned by name: more tools leave the evaluation set as it was; a name not in the toolset is an error
    assert split_tools(names + ["U1", "U2"], 0, seed=1, pinned=evals) == (train + ["U1", "U2"], evals)
    with pytest.raises(ValueError, match="not in the toolset: Nope"):
        split_tools(names, 0, seed=1, pinned=["T1", "Nope"])
    with pytest.raises(ValueError, match="n_eval_tools=2 but 1 eval_tools"):
        SimulationConfig(n_eval_tools=2, eval_tools=["T1"])


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="strategy"):
        SimulationConfig(strategy="guess")
    with pytest.raises(ValueError, match="mode"):
        SimulationConfig(mode="fast")


# ----------------------------------------------------------------------------- fuzzed model output
fake_executor = fixed_executor(lambda seed: 200 if seed % 2 else 404, "Status Code: 200. Response: {}")


GARBAGE = st.one_of(
    st.text(max_size=300),
    st.just('{"thought": "t", "action": "getWeather", "action_input": {"city": "Pa'),      # truncated JSON
    st.just('{"thought": "t", "action": "deleteEverything", "action_input": {}}'),         # wrong function
    st.just("Thought: x\nAction: launchRocket\nAction Input: {\"a\": 1}"),
    st.just("Thought: x\nAction: getWeather\nAction Input: {\"city\": 5}"),                # wrong type
    st.just("Final Answer: " + "word " * 5000),                                            # huge output
    st.just('{"thought": "t", "final_answer": "It is sunny."}'),
    st.just("Thought: ok\nAction: getWeather\nAction Input: {\"city\": \"Oslo\"}"),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(GARBAGE, min_size=1, max_size=6), mode=st.sampled_from(["free", "constrained"]),
       forced=st.booleans(), scaffold=st.booleans())
def test_fuzzed_model_output_never_crashes_the_loop(texts, mode, forced, scaffold):
    record = weather_record()
    model = ScriptedModel(texts)
    traj = run_assistant(model, record, "What is the weather in Oslo?", fake_executor, mode=mode, max_steps=4,
                         forced_first=("getWeather", {"city": "Oslo"}) if forced else None,
                         answer_after_success=forced, scaffold=scaffold)
    assert traj.stop_reason  # every episode ends with a stated reason
    assert (traj.final is not None) == (traj.stop_reason == "final answer")
    schemas = function_schemas(record_spec(record))
    for step in traj.steps:
        assert step.observation
        if step.error is None and step.action in schemas:  # what was executed was schema-valid
            assert validate_arguments(schemas[step.action], json.loads(step.action_input)) == []


def test_a_repeated_invalid_reply_ends_the_episode():
    """A model that answers the corrective observation with the very same unusable text is
    looping; the episode stops there, with that reason, instead of spending its last steps."""
    rambling = "The weather in Oslo is usually cold in winter."
    traj = run_assistant(ScriptedModel([rambling]), weather_record(), "Weather in Oslo?", fake_executor,
                         mode="free", max_steps=3)
    assert len(traj.steps) == 2 and traj.stop_reason == "repeated the same invalid reply"
    varied = run_assistant(ScriptedModel([rambling, rambling + " Or not.", rambling]), weather_record(),
                           "Weather in Oslo?", fake_executor, mode="free", max_steps=3)
    assert len(varied.steps) == 3  # different invalid replies each get their turn (and count as errors)


def test_after_the_answer_nudge_plain_prose_is_the_answer_in_free_mode():
    forced = ("getWeather", {"city": "Oslo"})
    ok = Observation(200, 'Status Code: 200. Response: {"temp": 3}')
    traj = run_assistant(ScriptedModel(["It is 3 degrees in Oslo right now."]), weather_record(), "Weather in Oslo?",
                         lambda *a, **k: ok, mode="free", forced_first=forced, answer_after_success=True)
    assert traj.stop_reason == "final answer" and traj.final["answer"] == "It is 3 degrees in Oslo right now."
    assert traj.final["text"].endswith("Final Answer: It is 3 degrees in Oslo right now.")
    again = run_assistant(ScriptedModel(['Thought: more\nAction: getWeather\nAction Input: {"city": "Bergen"}']),
                          weather_record(), "Weather in Oslo?", lambda *a, **k: ok, mode="free", forced_first=forced,
                          answer_after_success=True)
    assert again.final is None  # a reply that calls a tool again is not an answer


def test_a_call_code_writes_is_thought_of_by_its_documentation_line():
    """call-first: the thought before the written call is the function's summary, which the
    prompt shows; the name is the action's alone."""
    ok = Observation(200, 'Status Code: 200. Response: {"temp": 3}')
    traj = run_assistant(ScriptedModel(["It is 3 degrees."]), weather_record(), "Weather in Oslo?",
                         lambda *a, **k: ok, mode="free", forced_first=("getWeather", {"city": "Oslo"}))
    first = traj.steps[0]
    assert first.thought == "The request needs this: Current weather for a city."
    assert "getWeather" not in first.thought and parse_step(first.text).action == "getWeather"
    assert "Current weather for a city." in Episode(weather_record(), "Weather?", None).request().messages[0]["content"]


def test_free_scaffold_changes_what_the_teacher_sees_not_what_is_stored():
    from toolalpaca_utils.agents import ANSWER_SYSTEM, demonstration_turns

    record = weather_record()
    demos = demonstration_turns(record)
    # one worked call per function, values from the schema; the optional "units" is left out
    assert [m["role"] for m in demos] == ["user", "assistant"]
    assert demos[1]["content"].endswith('Action: getWeather\nAction Input: {"city": "example"}')
    ok = Observation(200, 'Status Code: 200. Response: {"temp": 3}')
    call = 'Thought: I need to call getWeather.\nAction: getWeather\nAction Input: {"city": "%s"}'
    model = ScriptedModel([call % "example", call % "Oslo", "It is 3 degrees in Oslo."])
    traj = run_assistant(model, record, "What is the weather in Oslo?", lambda *a, **k: ok, mode="free",
                         answer_after_success=True, scaffold=True)
    first = model.sent[0]
    assert first[1:3] == demos and first[3] == {"role": "user", "content": "What is the weather in Oslo?"}
    # copying the example's values is a recorded, explained failure, not a call
    assert traj.steps[0].error == "copied the example call" and traj.steps[0].status is None
    assert traj.steps[1].status == 200
    # the answer is asked for in a short chat with only the request and the response
    answer_chat = model.sent[-1]
    assert answer_chat[0]["content"] == ANSWER_SYSTEM and len(answer_chat) == 2
    assert "What is the weather in Oslo?" in answer_chat[1]["content"] and '{"temp": 3}' in answer_chat[1]["content"]
    assert traj.stop_reason == "final answer" and traj.final["answer"] == "It is 3 degrees in Oslo."
    # what is stored holds no trace of the scaffold
    assert not any("example" in s.observation or "example" in s.text for s in traj.steps[1:])
    # a request that itself holds the example's value may use it
    same = run_assistant(ScriptedModel([model.texts[0], "Fine."]), record, "Weather in the town called example?",
                         lambda *a, **k: ok, mode="free", answer_after_success=True, scaffold=True)
    assert same.steps[0].status == 200
    # constrained mode ignores the scaffold
    assert not Episode(record, "Weather?", fake_executor, mode="constrained", scaffold=True).scaffold


def test_worked_calls_take_examples_from_descriptions_and_enums():
    from toolalpaca_utils.agents import demonstration_turns
    from toolalpaca_utils.realtools import real_tool_records

    converter = {r["Name"]: r for r in real_tool_records(base_url="http://127.0.0.1:9")}["UnitConverter"]
    calls = {parse_step(m["content"]).action: parse_step(m["content"]).action_input
             for m in demonstration_turns(converter) if m["role"] == "assistant"}
    schemas = function_schemas(record_spec(converter))
    assert set(calls) == set(schemas)
    assert calls["convertUnits"] == {"value": 2, "from_unit": "mile", "to_unit": "km"}
    assert calls["listUnits"] == {"kind": "length"}
    assert all(validate_arguments(schemas[n], a) == [] for n, a in calls.items())


def test_filters_keep_a_recovery_from_a_service_error_but_not_from_an_unusable_step():
    from toolalpaca_utils.agents import Step, Trajectory
    from toolalpaca_utils.simulation import rejection_reason

    def step(status, valid, error=None, action="getWeather"):
        return Step("text", "t", action, '{"city": "Oslo"}', "obs", status, valid, error)

    final = {"text": "Thought: done\nFinal Answer: 3 degrees", "answer": "3 degrees"}
    cfg = SimulationConfig()
    recovered = Trajectory([step(404, True, "http 404"), step(200, True)], final, "final answer")
    assert rejection_reason(recovered, cfg) is None
    unusable = Trajectory([step(None, False, "unknown function", "getTemp"), step(200, True)], final, "final answer")
    assert rejection_reason(unusable, cfg) == "contains an invalid call"
    assert rejection_reason(unusable, SimulationConfig(allow_error_steps=True)) is None
    failed = Trajectory([step(404, True, "http 404")], final, "final answer")
    assert rejection_reason(failed, cfg) == "executor errors only"


def test_user_agent_tops_up_a_short_list_one_request_at_a_time():
    from toolalpaca_utils.agents import write_instructions

    model = ScriptedModel(["1. What is the weather in Oslo today?", "2. Is it raining in Lima right now?",
                           'Request: "Will it snow in Bern on 3 March 2025?"\nThat is my request.'])
    texts = write_instructions(model, weather_record(), 3)
    assert texts == ["What is the weather in Oslo today?", "Is it raining in Lima right now?",
                     "Will it snow in Bern on 3 March 2025?"]
    assert model.calls == 3  # the list, then one call per missing request


def test_simulated_executor_turns_garbage_into_a_recorded_failure():
    obs = SimulatedExecutor(ScriptedModel(["not json at all"]))(weather_record(), "getWeather", {"city": "Oslo"})
    assert obs.status is None and obs.error.startswith("executor")


def test_simulation_records_every_failure_with_a_reason(tmp_path):
    model = ScriptedModel(["1. What is the weather in Oslo today?\n2. Is it raining in Lima right now?",
                           "Thought: hmm", "total garbage {"])
    cfg = SimulationConfig(instructions_per_tool=2, strategy="instruction-first", mode="free", n_eval_tools=0)
    res = simulate(model, [weather_record()], cfg, out_dir=tmp_path, progress=False)
    rejects = load_split(tmp_path, "rejects")
    assert res.counts["rejects"] == 2 and all(r["drop_reason"] for r in rejects)


def test_a_run_dir_refuses_another_configuration_but_not_a_newer_field(tmp_path):
    model = ScriptedModel(["1. What is the weather in Oslo today?", "total garbage {"])
    cfg = SimulationConfig(instructions_per_tool=1, strategy="instruction-first", mode="free", n_eval_tools=0)
    simulate(model, [weather_record()], cfg, out_dir=tmp_path, progress=False)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["scaffold"]  # as written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(stored))
    simulate(model, [weather_record()], cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        simulate(model, [weather_record()], SimulationConfig(instructions_per_tool=2, n_eval_tools=0),
                 out_dir=tmp_path, progress=False)


def test_a_tool_whose_documentation_changed_is_simulated_again(tmp_path):
    """A resumed run keeps the instances of an unchanged tool (the model is not asked again) and
    makes those of a tool whose record changed since (a rebuilt toolset) again."""
    cfg = SimulationConfig(instructions_per_tool=1, strategy="instruction-first", mode="free", n_eval_tools=0)

    def run(texts, record):
        model = ScriptedModel(texts)
        simulate(model, [record], cfg, out_dir=tmp_path, progress=False)
        return model.calls, [r["instruction"] for split in SPLITS for r in load_split(tmp_path, split)]

    assert run(["1. What is the weather in Oslo today?", "total garbage {"], weather_record())[1] == [
        "What is the weather in Oslo today?"]
    assert run(["1. Is it raining in Lima right now?"], weather_record()) == (0, ["What is the weather in Oslo today?"])
    changed = {**weather_record(), "Description": "Weather reports for cities, rewritten."}
    calls, instructions = run(["1. Is it raining in Lima right now?", "total garbage {"], changed)
    assert calls > 0 and instructions == ["Is it raining in Lima right now?"]


# ----------------------------------------------------------------------------- the real model
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["call-first", "instruction-first"])
@pytest.mark.parametrize("mode", ["constrained", "free"])
def test_tiny_simulation_with_the_embedded_model(strategy, mode, llm_server, realtools_url, tmp_path):
    from toolalpaca_utils.llm import ChatClient
    from toolalpaca_utils.realtools import real_tool_records

    client = ChatClient(llm_server.base_url, llm_server.model, cache_dir=REPO / ".cache" / "test-llm")
    real = {r["Name"]: r for r in real_tool_records(base_url=realtools_url)}
    tools = [weather_record(), real["UnitConverter"]]
    cfg = SimulationConfig(instructions_per_tool=2, strategy=strategy, mode=mode, n_eval_tools=1, seed=3)
    res = simulate(client, tools, cfg, out_dir=tmp_path, progress=False)
    kept = load_split(tmp_path, "train") + load_split(tmp_path, "eval")
    rejects = load_split(tmp_path, "rejects")
    print(strategy, mode, res.counts, res.drop_reasons)
    # Properties that hold for any output of the teacher (its yield belongs in the benchmarks):
    # every request ends accepted or rejected with a reason, and the counts add up.
    assert len(kept) + len(rejects) == 4
    assert all(r["drop_reason"] for r in rejects)
    assert sum(res.drop_reasons.values()) == len(rejects)
    assert res.counts == {"train": len(load_split(tmp_path, "train")), "eval": len(load_split(tmp_path, "eval")),
                          "rejects": len(rejects)}
    assert len({i["id"] for i in kept + rejects}) == 4
    records = {t["Name"]: t for t in tools}
    for inst in kept:
        assert inst["final"] and inst["golden"]
        schemas = function_schemas(record_spec(records[inst["tool"]]))
        for step in inst["steps"]:
            if step["action"] in schemas:
                assert validate_arguments(schemas[step["action"]], json.loads(step["action_input"])) == []
    eval_tools = {i["tool"] for i in load_split(tmp_path, "eval")}
    assert not eval_tools & {i["tool"] for i in load_split(tmp_path, "train")}


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_simulation import weather_record
    from toolalpaca_utils.llm import ChatClient
    from toolalpaca_utils.simulation import SimulationConfig, simulate
    client = ChatClient({url!r}, {model!r}, cache_dir={cache!r})
    cfg = SimulationConfig(instructions_per_tool=4, strategy="call-first", mode="free", n_eval_tools=0, seed=5)
    simulate(client, [weather_record()], cfg, out_dir={out!r}, progress=False)
    print("SERVER_CALLS", client.stats.server_calls)
""")


@pytest.mark.slow
def test_sigkill_and_resume(llm_server, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(REPO / "tests"), url=llm_server.base_url,
                                           model=llm_server.model, cache=str(cache), out=str(out)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill as soon as the first instance is on disk
        if sum(len(read_jsonl(out / f"{s}.jsonl")) for s in ("train", "rejects")) >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {s: read_jsonl(out / f"{s}.jsonl") for s in ("train", "rejects")}
    n_before = sum(map(len, before.values()))
    assert 1 <= n_before < 4
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = {s: read_jsonl(out / f"{s}.jsonl") for s in ("train", "rejects")}
    ids = [r["id"] for rows in after.values() for r in rows]
    assert len(ids) == 4 and len(set(ids)) == 4, Counter(ids)
    for s in before:  # finished instances are untouched, not redone
        assert after[s][:len(before[s])] == before[s]


def test_template_instruction_never_names_the_api():
    """The call-first fallback removes the API's name from the function summary, words out the
    parameter names, and a value that contains the name is the user's detail, not a violation."""
    from toolalpaca_utils.agents import instruction_problems, template_instruction

    fn = {"name": "getSystemAuth", "description": "Returns pages from the Chronicling America archive.",
          "parameters": [{"name": "getSystemAuth", "type": "string", "required": True, "description": "x"},
                         {"name": "maxResults", "type": "integer", "required": False, "description": "y"}],
          "output": {"description": "pages", "properties": []}}
    spec = build_spec("Chronicling America", "Old newspapers.", [fn])
    rec = record_from_spec(spec, name="Chronicling America", description="Old newspapers.", category="News")
    args = {"getSystemAuth": "Chronicling America 1900", "maxResults": 3}
    text = template_instruction(rec, "getSystemAuth", args)
    assert "the service archive" in text and "get system auth Chronicling America 1900" in text
    assert "max results 3" in text
    assert instruction_problems(text, rec, args) == []
    assert "names the API or a function" in instruction_problems(text, rec)  # without args the value counts


@pytest.mark.slow
def test_two_replicas_in_parallel_give_the_same_corpus(llm_server, realtools_url, tmp_path):
    """Two servers, two workers: each worker keeps its own server, both servers do work, and the
    corpus has the instances, splits and file order a single sequential worker writes.

    Texts are not compared: llama.cpp reuses the previous request's prefix, so a server's output
    can depend on what it served before (near-ties flip); a fixed worker count on fresh servers,
    or the call cache, is what makes a run repeatable."""
    from toolalpaca_utils.llm import ChatClient, embedded_server
    from toolalpaca_utils.realtools import real_tool_records

    real = {r["Name"]: r for r in real_tool_records(base_url=realtools_url)}
    tools = [weather_record(), real["UnitConverter"], real["Jokes"]]
    cfg = SimulationConfig(instructions_per_tool=1, strategy="call-first", mode="constrained", n_eval_tools=1,
                           seed=11)
    one = ChatClient(llm_server.base_url, llm_server.model, cache_dir=None)
    simulate(one, tools, cfg, out_dir=tmp_path / "one", progress=False, workers=1)
    with embedded_server(n_threads=1) as second:
        two = ChatClient(llm_server.base_url, llm_server.model, cache_dir=None, replica_urls=[second.base_url])
        assert two.parallelism == 2
        simulate(two, tools, cfg, out_dir=tmp_path / "two", progress=False)
        assert sorted(two.stats.server_calls_by_replica) == [0, 1]   # both servers did work

    def layout(run: str) -> dict:
        rows = {s: load_split(tmp_path / run, s) for s in ("train", "eval", "rejects")}
        _, eval_tools = split_tools([t["Name"] for t in tools], cfg.n_eval_tools, cfg.seed)
        return {"ids": sorted(r["id"] for rs in rows.values() for r in rs),
                "tool-level split": all((r["tool"] in eval_tools) == (split == "eval")
                                        for split in ("train", "eval") for r in rows[split]),
                "ordered": all([r["id"] for r in rs] == sorted((r["id"] for r in rs),
                                                            key=lambda i: [t["Name"] for t in tools].index(
                                                                i.split(":")[0]))
                               for rs in rows.values())}

    assert layout("one") == layout("two")
    assert layout("two")["ordered"] and layout("two")["tool-level split"] and len(layout("two")["ids"]) == 3
    for run in ("one", "two"):   # per-instance token counts are the worker's own, never the other's
        rows = [r for s in ("train", "eval", "rejects") for r in load_split(tmp_path / run, s)]
        assert all(r["tokens"]["completion"] < 400 for r in rows)


def test_plot_corpus_survives_an_empty_panel(tmp_path):
    """Nothing dropped: the drop-reason panel says "none" instead of failing to plot."""
    import pandas as pd

    from toolalpaca_utils.simulation import plot_corpus

    frame = pd.DataFrame([{"kept": True, "drop_reason": None, "n_steps": 2, "tool": "A", "functions": ["f"]}])
    fig = plot_corpus(frame)
    assert fig.axes[0].texts[0].get_text() == "none" and len(fig.axes) == 3
