"""Stage 6 (STE): memory and ablation prompts, the exploration loop with a scripted model,
distillation checks, retrieval, the ICL wrapper, continual-learning helpers — and, with the
embedded model and the real tools service, exploration → distillation → ICL prompt → a short
fine-tune."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from toolalpaca_utils import ste
from toolalpaca_utils.agents import missing_values
from toolalpaca_utils.corpus import load_tools, read_jsonl
from toolalpaca_utils.llm import ChatResult
from toolalpaca_utils.react import system_prompt
from toolalpaca_utils.values import documented_examples, sample_value

from doubles import ScriptedModel, fixed_executor

FIXTURE = Path(__file__).parent / "fixtures" / "corpus_small"


@pytest.fixture(scope="module")
def record():
    return load_tools(FIXTURE)["ShelfSearch"]


def trial_row(tool: str, episode: int, trial: int, query: str, *, reflection="Yes", ok=True) -> dict:
    obs = ('Status Code: 200. Response: {"results": [{"title": "Dune"}], "total": 1}' if ok
           else "Status Code: 400. Error: invalid input")
    value = query.rstrip("!?.").split()[-1]  # the request's last word: a value it says
    return {
        "id": f"{tool}-e{episode}-t{trial}", "tool": tool, "episode": episode, "trial": trial, "query": query,
        "steps": [{"text": f'Thought: search\nAction: searchBooks\nAction Input: {{"query": "{value}"}}',
                   "thought": "search", "action": "searchBooks", "action_input": json.dumps({"query": value}),
                   "observation": obs, "status": 200 if ok else 400, "valid": True, "error": None}],
        "final": {"text": "Thought: done\nFinal Answer: I found Dune.", "answer": "I found Dune."},
        "reflection": reflection,
    }


# ------------------------------------------------------------------------------ memory prompts
def test_short_term_memory_holds_the_episodes_earlier_trials(record):
    cfg = ste.ExploreConfig()
    earlier = [trial_row("ShelfSearch", 1, 0, "Find books about whales", reflection="Yes"),
               trial_row("ShelfSearch", 1, 1, "Books by Ursula Le Guin in French", reflection="No", ok=False)]
    system = ste.trial_system_prompt(record, earlier, cfg)
    assert system.startswith(system_prompt(record, with_get_details=False))
    assert ste.STM_HEADER in system
    for row in earlier:
        assert f"Request: {row['query']}" in system
        assert row["steps"][0]["observation"][:40] in system
        assert "Action: searchBooks" in system
    assert "Fulfilled: Yes" in system and "Fulfilled: No" in system
    assert "Final Answer: I found Dune." in system
    # in order, trial 1 before trial 2
    assert system.index(earlier[0]["query"]) < system.index(earlier[1]["query"])
    # the imagination prompt (both kinds) carries the same memory block
    for kind in ("call-first", "query"):
        user = ste.imagination_messages(record, "searchBooks", earlier, [], ste.ExploreConfig(imagination=kind))[-1]
        assert ste.short_term_block(earlier, cfg) in user["content"] and ste.STM_IMAGINE_HINT in user["content"]
    # a fresh episode has no short-term memory
    assert ste.trial_system_prompt(record, [], cfg) == system_prompt(record, with_get_details=False)
    assert ste.short_term_block([], cfg) == ""


def test_long_term_memory_lists_every_earlier_query_with_its_label(record):
    cfg = ste.ExploreConfig()
    earlier = [trial_row("ShelfSearch", 0, 0, "Find books about whales", reflection="Yes"),
               trial_row("ShelfSearch", 0, 1, "Is there a German edition of Faust?", reflection="No"),
               trial_row("ShelfSearch", 1, 0, "Three books on chess openings", reflection=None)]
    for kind in ("call-first", "query"):
        user = ste.imagination_messages(record, "getBookDetails", [], earlier, ste.ExploreConfig(imagination=kind))
        user = user[-1]["content"]
        assert ste.LTM_HEADER in user and "explore something different" in user.lower()
        assert "- Find books about whales (Solved: Yes)" in user
        assert "- Is there a German edition of Faust? (Solved: No)" in user
        assert "- Three books on chess openings (Solved: unknown)" in user   # its reflection failed
        assert "getBookDetails" in user
        assert ste.LTM_HEADER not in ste.trial_system_prompt(record, [], cfg)  # long-term memory is for imagining


def _strip(text: str, part: str) -> str:
    assert part and part in text, "the part an ablation removes must be in the full prompt"
    return text.replace(part, "")


@pytest.mark.parametrize("imagination", ["call-first", "query"])
def test_each_ablation_switch_removes_exactly_its_part(record, imagination):
    full = ste.ExploreConfig(imagination=imagination)
    episode = [trial_row("ShelfSearch", 1, 0, "Find books about whales")]
    earlier = [trial_row("ShelfSearch", 0, 0, "Novels set in Lisbon", reflection="No")]

    def prompts(**off):
        cfg = ste.ExploreConfig(imagination=imagination, **off)
        img = ste.imagination_messages(record, "searchBooks", episode, earlier, cfg)
        return ste.trial_system_prompt(record, episode, cfg), img

    sys_full, img_full = prompts()
    user_full = img_full[-1]["content"]

    def same_but_last(img):  # everything but the last user turn is unchanged
        assert img[:-1] == img_full[:-1]
        return img[-1]["content"]

    # short-term memory off: the memory block leaves the trial's system turn and the imagination prompt
    stm = ste.short_term_block(episode, full)
    sys_, img = prompts(short_term_memory=False)
    assert sys_ == _strip(sys_full, "\n\n" + stm) == system_prompt(record, with_get_details=False)
    assert same_but_last(img) == _strip(user_full, stm + "\n\n" + ste.STM_IMAGINE_HINT + "\n\n")
    # long-term memory off: only the list of earlier requests leaves the imagination prompt
    sys_, img = prompts(long_term_memory=False)
    assert sys_ == sys_full
    assert same_but_last(img) == _strip(user_full, ste.long_term_block(earlier, full) + "\n\n")
    # reflection off: only the labels go (Fulfilled: in the short-term, Solved: in the long-term memory)
    sys_, img = prompts(reflection=False)
    assert sys_ == _strip(sys_full, "\nFulfilled: Yes")
    assert same_but_last(img) == _strip(_strip(user_full, "\nFulfilled: Yes"), " (Solved: No)")
    assert ste.ExploreConfig(long_term_memory=False, reflection=False).condition == "no-ltm+no-reflection"


def test_a_trial_of_one_function_sees_and_can_call_only_that_function(record):
    cfg = ste.ExploreConfig()
    scoped = ste.trial_system_prompt(record, [], cfg, "getBookDetails")
    assert "getBookDetails:" in scoped and "searchBooks:" not in scoped
    whole = ste.trial_system_prompt(record, [], ste.ExploreConfig(trial_scope="tool"), "getBookDetails")
    assert whole == system_prompt(record, with_get_details=False) and "searchBooks:" in whole
    branches = ste.trial_step_schema(record, cfg, "getBookDetails")["anyOf"]
    assert [b["properties"].get("action", {}).get("const") for b in branches] == ["getBookDetails", None]
    assert len(ste.trial_step_schema(record, ste.ExploreConfig(trial_scope="tool"), "getBookDetails")["anyOf"]) == 3
    assert [ste.explored_function(record, e, cfg) for e in range(3)] == ["searchBooks", "getBookDetails", "searchBooks"]


# ------------------------------------------------------------------------------ the loop, scripted
class ExplorerModel(ScriptedModel):
    """Answers every request of the exploration loop by its kind, and records the requests."""

    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        self.n_queries = 0

    def reply(self, messages, schema):
        self.requests.append({"messages": messages, "schema": schema, "kind": self.kind(messages, schema)})
        kind = self.requests[-1]["kind"]
        if kind == "imagine-call":
            self.n_queries += 1
            value = {"query": f"sailing {self.n_queries}"}
            return ChatResult(text=json.dumps(value), parsed=value)
        if kind == "phrase":
            return ChatResult(text=f"Request: Find books about {messages[-1]['content'].split('query = ')[1].split()[0]} "
                                   f"{self.n_queries} please\nmore")
        if kind == "reflect":
            return ChatResult(text='{"fulfilled": "Yes"}', parsed={"fulfilled": "Yes"})
        if kind == "final":
            value = {"thought": "I know it", "final_answer": "The catalogue has Dune."}
            return ChatResult(text=json.dumps(value), parsed=value)
        value = {"thought": "Search the catalogue", "action": "searchBooks", "action_input": {"query": "sailing"}}
        return ChatResult(text=json.dumps(value), parsed=value)

    @staticmethod
    def kind(messages, schema):
        if messages[0]["content"] == ste.ARGS_SYSTEM:
            return "imagine-call"
        if messages[0]["content"] == ste.PHRASE_SYSTEM:
            return "phrase"
        if schema == ste.REFLECTION_SCHEMA:
            return "reflect"
        if schema is not None and "anyOf" not in schema:
            return "final"
        return "step"


fake_executor = fixed_executor(200, 'Status Code: 200. Response: {"results": [{"title": "Dune"}], "total": 1}')


def test_explore_wires_both_memories_records_every_trial_and_resumes(record, tmp_path):
    model = ExplorerModel()
    cfg = ste.ExploreConfig(episodes=2, trials=2)
    out = tmp_path / "trials.jsonl"
    rows = ste.explore(model, [record], cfg, out_path=out, executor=fake_executor, progress=False)
    assert [r["id"] for r in rows] == ["ShelfSearch-e0-t0", "ShelfSearch-e0-t1", "ShelfSearch-e1-t0", "ShelfSearch-e1-t1"]
    assert [r["target_function"] for r in rows] == ["searchBooks", "searchBooks", "getBookDetails", "getBookDetails"]
    assert all(r["solved_by_execution"] and r["reflection"] == "Yes" and r["statuses"] == [200] for r in rows)
    assert rows[0]["query"] == "Find books about sailing 1 please" and rows[0]["query_source"] == "model"
    assert rows[0]["imagined_call"] == {"action": "searchBooks", "args": {"query": "sailing 1"}, "problems": []}
    imagine = [q["messages"] for q in model.requests if q["kind"] == "imagine-call"]
    assert len(imagine) == 4
    # the trial never sees the imagined call, only the request
    steps = [q["messages"] for q in model.requests if q["kind"] == "step"]
    assert steps[0][1] == {"role": "user", "content": rows[0]["query"]}
    # trial (1,1): short-term memory = trial (1,0); long-term memory = both requests of episode 0
    last = imagine[3][-1]["content"]
    assert f"Request: {rows[2]['query']}" in last
    assert f"- {rows[0]['query']} (Solved: Yes)" in last and f"- {rows[1]['query']} (Solved: Yes)" in last
    assert f"- {rows[2]['query']}" not in last
    trial_systems = [q["messages"][0]["content"] for q in model.requests if q["kind"] == "step"]
    assert rows[2]["query"] in trial_systems[3] and rows[0]["query"] not in trial_systems[3]
    assert rows[3]["memory"] == {"short_term_trials": 1, "long_term_queries": 2}
    # every trial is on disk; a second run replays them without calling the model
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in rows]
    again = ExplorerModel()
    assert ste.explore(again, [record], cfg, out_path=out, executor=fake_executor, progress=False) == rows
    assert again.requests == []
    # a phrasing that drops an imagined value is replaced by the code template (and says so)
    class Lossy(ExplorerModel):
        def chat(self, messages, *, schema=None, **gen):
            if self.kind(messages, schema) == "phrase":
                self.requests.append({"messages": messages, "schema": schema, "kind": "phrase"})
                return ChatResult(text="Find me some nice books")
            return super().chat(messages, schema=schema, **gen)

    lossy = ste.explore(Lossy(), [record], ste.ExploreConfig(episodes=1, trials=1), executor=fake_executor,
                        progress=False)[0]
    assert lossy["query_source"] == "template" and "sailing 1" in lossy["query"]
    assert lossy["query_raw"] == "Find me some nice books" and lossy["query_missing_values"] == ["query"]
    # without reflection there is no reflection call and no label
    bare = ExplorerModel()
    rows2 = ste.explore(bare, [record], ste.ExploreConfig(episodes=1, trials=1, reflection=False),
                        executor=fake_executor, progress=False)
    assert rows2[0]["reflection"] is None and all(q["kind"] != "reflect" for q in bare.requests)
    stats = ste.exploration_stats(rows)
    assert stats.loc["TOTAL", "trials"] == 4 and stats.loc["TOTAL", "solved by execution %"] == 100.0


def test_typed_imagination_writes_the_request_by_code_and_the_trial_executes_it(record, tmp_path):
    """imagination="typed" (the cpu default): no imagination call; the call's values are typed by
    code, the request comes from the bank of frames and says every value; memories still shape
    the trial; the rows are seeded (a second run in another folder writes the same requests)."""
    model = ExplorerModel()
    cfg = ste.ExploreConfig(episodes=2, trials=2, imagination="typed")
    rows = ste.explore(model, [record], cfg, out_path=tmp_path / "a.jsonl", executor=fake_executor, progress=False)
    assert all(q["kind"] not in ("imagine-call", "imagine", "phrase") for q in model.requests)
    assert [r["query_source"] for r in rows] == ["bank"] * 4
    for r in rows:
        call = r["imagined_call"]
        assert call["action"] == r["target_function"] and missing_values(r["query"], call["args"]) == []
        assert r["query_frame"] and not ste.request_problems(r["query"], record)
    steps = [q["messages"] for q in model.requests if q["kind"] == "step"]
    assert steps[0][1] == {"role": "user", "content": rows[0]["query"]}
    again = ste.explore(ExplorerModel(), [record], cfg, out_path=tmp_path / "b.jsonl", executor=fake_executor,
                        progress=False)
    assert [r["query"] for r in again] == [r["query"] for r in rows]


def test_typed_requests_do_not_read_the_long_term_memory(record, tmp_path):
    """requests_read_memory is False for typed imagination because the requests are the same with
    and without the long-term memory (the ablation notebook 06 therefore skips); the model's kinds read it."""
    runs = {}
    for ltm in (True, False):
        cfg = ste.ExploreConfig(episodes=2, trials=2, imagination="typed", long_term_memory=ltm)
        runs[ltm] = ste.explore(ExplorerModel(), [record], cfg, out_path=tmp_path / f"{ltm}.jsonl",
                                executor=fake_executor, progress=False)
    assert [r["query"] for r in runs[True]] == [r["query"] for r in runs[False]]
    assert not ste.ExploreConfig(imagination="typed").requests_read_memory
    assert ste.ExploreConfig(imagination="call-first").requests_read_memory
    assert ste.ExploreConfig(imagination="query").requests_read_memory


def test_required_tool_choice_and_documented_examples_shape_a_trial(record):
    """tool_choice="required": a trial's first constrained step offers no final answer (later ones
    do); examples_share=1: string values are the documentation's quoted examples."""
    model = ExplorerModel()
    cfg = ste.ExploreConfig(episodes=1, trials=1, imagination="typed", tool_choice="required", answer_after_success=False)
    ste.explore(model, [record], cfg, executor=fake_executor, progress=False)
    steps = [q["schema"] for q in model.requests if q["kind"] == "step"]
    assert all("final_answer" not in b["properties"] for b in steps[0]["anyOf"])
    assert any("final_answer" in b["properties"] for b in steps[1]["anyOf"])
    schema = {"type": "string", "description": "IATA (e.g. 'LHR') or ICAO ('EGLL') code, as 'YYYY-MM-DD' is not"}
    assert documented_examples(schema) == ["LHR", "EGLL"]
    # an apostrophe opens no quote (it drew "'s currency, e.g. '" for a real tool's parameter)
    assert documented_examples({"description": "ISO 4217 code of the amount's currency, e.g. 'USD'."}) == ["USD"]
    drawn = {sample_value("code", schema, random.Random(i), examples_share=1.0).value for i in range(20)}
    assert drawn == {"LHR", "EGLL"}
    assert sample_value("code", schema, random.Random(3)) == sample_value("code", schema, random.Random(3),
                                                                         examples_share=0.0)


def test_grounded_exploration_binds_every_calls_free_strings_to_the_request(record):
    """mode="grounded" (the cpu profile): each step of a trial may pass a free string only if the
    request says it (its readings), so a weak explorer cannot carry a stale value into a call."""
    from toolalpaca_utils.saying import readings

    model = ExplorerModel()
    cfg = ste.ExploreConfig(episodes=1, trials=1, imagination="typed", mode="grounded", tool_choice="required")
    (row,) = ste.explore(model, [record], cfg, executor=fake_executor, progress=False)
    steps = [q["schema"] for q in model.requests if q["kind"] == "step"]
    assert steps and all(q["kind"] != "step" or q["schema"] for q in model.requests)
    for schema in steps:
        calls = [b for b in schema["anyOf"] if "action" in b["properties"]]
        query = calls[0]["properties"]["action_input"]["properties"]["query"]
        assert set(query["enum"]) <= set(readings(row["query"])) and query["enum"]
    plain = ste.trial_step_schema(record, ste.ExploreConfig(), "searchBooks", query=row["query"])
    assert "enum" not in plain["anyOf"][0]["properties"]["action_input"]["properties"]["query"]
    # choices: only those the request names; an optional one it does not name cannot be passed
    from toolalpaca_utils.ste.exploration import _said_choices

    enums = {"language": {"type": "string", "enum": ["en", "de", "fr"]},
             "category": {"type": "string", "enum": ["pun", "dark"]},
             "kind": {"type": "string", "enum": ["short", "long"]},
             "limit": {"type": "integer"}}
    branch = {"properties": {"action": {"const": "getJoke"},
                             "action_input": {"type": "object", "properties": enums, "required": ["kind"]}}}
    said = _said_choices(branch, "A pun in German, please")["properties"]["action_input"]["properties"]
    assert said == {"language": {"type": "string", "enum": ["de"]}, "category": {"type": "string", "enum": ["pun"]},
                    "kind": enums["kind"], "limit": enums["limit"]}
    assert set(_said_choices(branch, "Any joke")["properties"]["action_input"]["properties"]) == {"kind", "limit"}


# ------------------------------------------------------------------------------ distillation
def test_distillation_keeps_grounded_successes_and_says_why_it_drops(record):
    good = trial_row("ShelfSearch", 0, 0, "Find books about whales")
    no_final = {**trial_row("ShelfSearch", 0, 1, "Find books about ravens"), "final": None}
    failed = trial_row("ShelfSearch", 0, 2, "Find books about owls", ok=False)
    ungrounded = {**trial_row("ShelfSearch", 0, 3, "Find books about crows"),
                  "final": {"text": "Final Answer: There are many.", "answer": "There are many."}}
    bad_args = trial_row("ShelfSearch", 0, 4, "Find books about herons")
    bad_args["steps"][0]["action_input"] = json.dumps({"query": "herons", "limit": "lots"})
    names_api = trial_row("ShelfSearch", 0, 5, "Use ShelfSearch to find books about hawks")
    dup = trial_row("ShelfSearch", 1, 0, "Find books about whales!")
    leak = trial_row("ShelfSearch", 1, 1, "Which books are about lighthouses?")
    other_fn = {**trial_row("ShelfSearch", 1, 2, "Details of the book with id B-17"),
                "imagined_call": {"action": "getBookDetails", "args": {"bookId": "B-17"}}}
    unsaid = trial_row("ShelfSearch", 1, 3, "Find books about gannets")  # the explorer called with a stale value
    unsaid["steps"][0]["action_input"] = json.dumps({"query": "whales"})
    res = ste.distill([good, no_final, failed, ungrounded, bad_args, names_api, dup, leak, other_fn, unsaid], [record],
                      eval_instructions=["Which books are about lighthouses?"])
    assert [e["id"] for e in res.examples] == ["ste-ShelfSearch-e0-t0"]
    reasons = {d["id"]: d["reason"] for d in res.dropped}
    assert reasons == {
        "ShelfSearch-e0-t1": "no final answer",
        "ShelfSearch-e0-t2": "no successful (2xx) call",
        "ShelfSearch-e0-t3": "answer not grounded in the observation",
        "ShelfSearch-e0-t4": "call arguments break the schema",
        "ShelfSearch-e0-t5": "request: names the API or a function",
        "ShelfSearch-e1-t0": "near-duplicate of a kept request",
        "ShelfSearch-e1-t1": "near-duplicate of an evaluation request",
        "ShelfSearch-e1-t2": "the call is not of the function the request was imagined for",
        "ShelfSearch-e1-t3": "call values the request does not say: query",
    }
    assert res.counts["kept_trials"] == 1 and res.counts["dropped_trials"] == 9
    ex = res.examples[0]
    # a corpus instance: one clean call with the real observation, then the answer
    assert ex["steps"][0]["text"] == 'Thought: search\nAction: searchBooks\nAction Input: {"query": "whales"}'
    assert ex["steps"][0]["status"] == 200 and ex["final"]["answer"] == "I found Dune."
    assert ex["golden"] == [{"Action": "searchBooks", "Action_Input": '{"query": "whales"}'}]


def test_an_ungrounded_answer_can_be_rewritten_from_the_observation(record):
    """With answer_from_observation the right call is kept, its answer written from the response
    (and marked), and the rewritten answer passes the grounding check it failed."""
    ungrounded = {**trial_row("ShelfSearch", 0, 3, "Find books about crows"),
                  "final": {"text": "Final Answer: There are many.", "answer": "There are many."}}
    failed = trial_row("ShelfSearch", 0, 2, "Find books about owls", ok=False)
    res = ste.distill([ungrounded, failed], [record], cfg=ste.DistillConfig(answer_from_observation=True))
    (ex,) = res.examples
    assert ex["answer_source"] == "observation" and ex["final"]["replaced"] == "There are many."
    assert ex["final"]["answer"] == "The service returned title: Dune; total: 1."
    assert ex["final"]["text"].endswith("Final Answer: The service returned title: Dune; total: 1.")
    assert ste.grounding_tokens(ex["final"]["answer"], ex["steps"][0]["observation"], ex["instruction"],
                                json.loads(ex["steps"][0]["action_input"]))
    assert res.counts["answers_from_observation"] == 1
    assert [d["reason"] for d in res.dropped] == ["no successful (2xx) call"]  # a failed call is still dropped


def test_every_paraphrase_reply_is_kept_or_dropped_with_its_reason(record):
    """A reply with no numbered rewrite (what the 135M explorer wrote for most requests in a cpu
    run) is a counted drop, as is a rewrite that loses a value of the call; a good one is kept."""
    replies = iter(["Rewrite this request in 1 different ways.", "1. Which novels feature ravens?",
                    "1. I would like some books on herons, please"])

    class Writer:
        def chat(self, messages, **kw):
            return ChatResult(text=next(replies))

    rows = [trial_row("ShelfSearch", 0, t, q) for t, q in
            enumerate(["Find books about whales", "Which novels feature owls?", "Show me books on herons"])]
    for row, value in zip(rows[1:], ["owls", "herons"]):
        row["steps"][0]["action_input"] = json.dumps({"query": value})
    res = ste.distill(rows, [record], client=Writer(), cfg=ste.DistillConfig(paraphrases_per_query=1))
    assert [(d["id"], d["reason"]) for d in res.dropped if d["kind"] == "paraphrase"] == [
        ("ste-ShelfSearch-e0-t0", "paraphrase: the reply holds no numbered rewrite"),
        ("ste-ShelfSearch-e0-t1-p0", "paraphrase: drops 'owls'")]
    assert res.counts["paraphrases"] == 1 and res.examples[-1]["paraphrase_of"] == "ste-ShelfSearch-e0-t2"


def test_a_tool_name_that_is_an_ordinary_word_may_appear_in_a_request():
    jokes = {"Name": "Jokes", "Function_Projection": {"getRandomJoke": ["/jokes/random", "GET"]}}
    units = {"Name": "UnitConverter", "Function_Projection": {"convertUnits": ["/units/convert", "GET"]}}
    assert ste.request_problems("Tell me two jokes about programmers", jokes) == []
    assert ste.request_problems("Call getRandomJoke for a joke", jokes) == [ste.NAMES_API]
    assert ste.request_problems("Ask UnitConverter to turn 5 miles into km", units) == [ste.NAMES_API]
    assert ste.request_problems("Ask unit_converter to turn 5 miles into km", units) == [ste.NAMES_API]
    holidays = {**units, "Name": "PublicHolidays"}
    assert ste.request_problems("Which public holidays does Peru have in 2025?", holidays) == []
    assert ste.request_problems("How many km are 5 miles?", units) == []
    # a tiny explorer tends to copy the worked example of the imagination prompt, whatever the tool
    assert ste.request_problems("Find me 3 books by China.", units) == ["copies the worked example"]


def test_a_typed_request_says_an_ordinary_tool_name_as_people_do():
    """The frames replace only what a request may not say: "the most populous cities", not "the
    most populous the service" (8 of the 33 real functions read so before)."""
    from toolalpaca_utils.agents.requests import task_phrase
    from toolalpaca_utils.realtools import real_tool_records
    from toolalpaca_utils.ste.exploration import _imagine_typed

    records = {r["Name"]: r for r in real_tool_records("http://127.0.0.1:9")}
    cities, units = records["Cities"], records["UnitConverter"]
    assert ste.unsayable_names(cities) == list(cities["Function_Projection"])
    assert task_phrase(cities, "listLargestCities", ste.unsayable_names(cities)) == \
        "the most populous cities of a country or the world"
    assert task_phrase(cities, "listLargestCities") == "the most populous the service of a country or the world"
    assert "UnitConverter" in ste.unsayable_names(units)
    # the requests typed imagination writes: no description word of any real function is replaced
    # (the words the trial's values name, "city" and "name", once were)
    cfg = ste.ExploreConfig(imagination="typed")
    for record in records.values():
        for episode, function in enumerate(record["Function_Projection"]):
            row = {}
            _imagine_typed(record, function, ste.trial_seed(cfg, record["Name"], episode, 0), row, cfg)
            assert "the service" not in row["query"] and not ste.request_problems(row["query"], record), row


def test_grounding_needs_a_value_from_the_observation_not_from_the_request():
    obs = 'Status Code: 200. Response: {"country": "Japan", "capital": "Tokyo", "population": 125681593}'
    assert ste.grounding_tokens("The capital is Tokyo.", obs, "What is the capital of Japan?", {"country": "Japan"})
    assert not ste.grounding_tokens("Japan is a country.", obs, "What is the capital of Japan?", {"country": "Japan"})
    assert ste.grounding_tokens("About 125,681,593 people.", obs, "How many people live in Japan?", {})
    pi = 'Status Code: 200. Response: {"result": 3.14159}'
    assert ste.grounding_tokens("It is 3.14", pi, "What is pi?", {})
    holiday = 'Status Code: 200. Response: {"date": "2023-05-02", "is_holiday": false, "names": []}'
    assert ste.grounding_tokens("No, it is not a holiday.", holiday, "Is 2 May 2023 a holiday in Poland?", {})


def test_paraphrases_must_keep_the_values_of_the_call(record):
    args = {"query": "whales", "limit": 3}
    seed = "Show me 3 books about whales"
    assert ste.paraphrase_problems("List three books on whales", seed, args, record) == ["drops '3'"]
    assert ste.paraphrase_problems("I'd like 3 books about whales, please", seed, args, record) == []
    assert "same as the request" in ste.paraphrase_problems("show me 3 books about whales!", seed, args, record)


# ------------------------------------------------------------------------------ retrieval and ICL
@pytest.fixture(scope="module")
def embedder():
    return ste.SentenceEmbedder()


def _example(i: int, tool: str, instruction: str) -> dict:
    return {"id": f"ex{i}", "tool": tool, "instruction": instruction,
            "steps": [{"text": "Thought: call\nAction: searchBooks\nAction Input: {}", "observation": "Status Code: 200."}],
            "final": {"text": "Thought: done\nFinal Answer: ok", "answer": "ok"}}


def test_the_most_similar_example_is_retrieved_first(embedder):
    examples = [_example(0, "A", "What is the capital city of France?"),
                _example(1, "A", "Convert 5 miles into kilometres."),
                _example(2, "A", "Tell me a joke about programmers."),
                _example(3, "B", "How many kilometres are 12 miles?")]
    retriever = ste.DemoRetriever(examples, embedder)
    v = embedder.encode(["a", "b c"])
    assert v.shape == (2, 384) and abs(float((v[0] ** 2).sum()) - 1) < 1e-4
    hits = retriever.top_k("How far is 10 miles in km?", 3)
    assert [e["id"] for e, _ in hits][:2] == ["ex3", "ex1"] and hits[0][1] >= hits[1][1] >= hits[2][1]
    assert [e["id"] for e, _ in retriever.top_k("How far is 10 miles in km?", 3, tool="A")] == ["ex1", "ex0", "ex2"]
    assert retriever.top_k("joke", 1, tool="C") == []


def test_icl_model_puts_the_retrieved_demonstrations_into_the_system_turn(record, embedder):
    from toolalpaca_utils.react import build_messages

    examples = [_example(0, "ShelfSearch", "Find novels by Jane Austen"),
                _example(1, "ShelfSearch", "Which books are about volcanoes?"),
                _example(2, "PantryChef", "Find books by Austen for dinner")]

    class Echo:
        name = "echo"

        def chat(self, messages, **kw):
            return ChatResult(text=messages[0]["content"])

    icl = ste.ICLModel(Echo(), ste.DemoRetriever(examples, embedder), [record], k=1)
    messages = build_messages(record, "Any books written by Jane Austen?")
    prompt = icl.chat(messages).text
    assert prompt.startswith(system_prompt(record)) and ste.DEMO_HEADER in prompt
    assert "Request: Find novels by Jane Austen" in prompt and "volcanoes" not in prompt and "dinner" not in prompt
    assert icl.retrieved["Any books written by Jane Austen?"] == ["ex0"]
    assert icl.chat(messages).text == prompt
    other = [{"role": "system", "content": "something else"}, {"role": "user", "content": "hi"}]
    assert icl.chat(other).text == "something else"          # not a tool prompt: unchanged
    assert messages[0]["content"] == system_prompt(record)   # the caller's messages are not modified


# ------------------------------------------------------------------------------ metrics and continual helpers
def test_ste_metrics_map_from_the_evaluation_scores():
    from toolalpaca_utils.evaluation import EvalRun

    def row(tool, wf, api, proc):
        return {"tool": tool, "metrics": {"well_formed": wf, "api_match": api, "process_correct": proc}}

    run = EvalRun("m", [row("A", True, True, True), row("A", True, True, False), row("B", False, False, False),
                        row("B", True, False, False)])
    assert ste.ste_scores(run) == {"model": "m", "n": 4, "well_formed": 75.0, "api_match": 50.0, "correct": 25.0}
    assert ste.correct_by_tool(run) == {"A": (1, 2), "B": (0, 2)}


def test_tool_batches_and_replay_sample():
    assert ste.tool_batches(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert ste.tool_batches(["a"], 4) == [["a"]]
    earlier = [{"id": i} for i in range(25)]
    sample = ste.replay_sample(earlier, 0.1, seed=1)
    assert len(sample) == 3 and sample == ste.replay_sample(earlier, 0.1, seed=1)
    assert ste.replay_sample(earlier, 0.0) == [] and ste.replay_sample([], 0.1) == []
    assert len(ste.replay_sample(earlier[:4], 0.1)) == 1


def test_diversity_counts_distinct_ngrams():
    assert ste.distinct_n(["a b c", "a b d"], 2) == 0.75
    d = ste.query_diversity(["one two", "one two"])
    assert d == {"n": 2, "distinct_1": 0.5, "distinct_2": 0.5}


# ------------------------------------------------------------------------------ end to end (tiny)
@pytest.mark.slow
@pytest.mark.e2e
def test_tiny_exploration_distillation_icl_and_finetune(llm_server, realtools_url, tmp_path, embedder):
    """Jokes and Countries: explored for real, distilled, used as ICL demonstrations and
    fine-tuned on for two steps."""
    from toolalpaca_utils.llm import ChatClient
    from toolalpaca_utils.realtools import real_tool_records
    from toolalpaca_utils.react import build_messages

    client = ChatClient(llm_server.base_url, llm_server.model, cache_dir=tmp_path / "cache")
    records = {r["Name"]: r for r in real_tool_records(realtools_url)}
    tools = [records["Jokes"], records["Countries"]]
    cfg = ste.ExploreConfig(episodes=1, trials=2, step_tokens=80)
    out = tmp_path / "trials.jsonl"
    rows = ste.explore(client, tools, cfg, out_path=out, progress=False)
    assert len(rows) == 4 and len(read_jsonl(out)) == 4
    assert any(r["n_ok_calls"] for r in rows), [r["stop_reason"] for r in rows]
    for r in rows:   # every call went to the real service: observations carry real status codes
        assert all(s["status"] in (None, 200, 400, 404, 422) for s in r["steps"])
    res = ste.distill(rows, records, client=client, cfg=ste.DistillConfig(paraphrases_per_query=1))
    assert res.examples, res.dropped
    assert len(res.dropped) + res.counts["kept_trials"] >= len(rows)
    # ICL: the demonstration of the most similar explored request enters the prompt
    ex = res.examples[0]
    icl = ste.ICLModel(client, ste.DemoRetriever(res.examples, embedder), records, k=2)
    prompt = icl.rewrite(build_messages(records[ex["tool"]], ex["instruction"]))[0]["content"]
    assert f"Request: {ex['instruction']}" in prompt and ex["steps"][0]["text"] in prompt
    # fine-tuning: two LoRA steps on the distilled examples
    result = ste.finetune(records, res.examples, out_dir=tmp_path / "ft", max_steps=2, lora_last_layers=2,
                          per_device_batch_size=1, grad_accum=1, max_length=1024, num_threads=2, warmup=0)
    assert result.global_step == 2 and (Path(result.adapter_dir) / "adapter_config.json").is_file()


def test_continual_learning_rounds_replay_and_the_forgetting_table(monkeypatch, tmp_path):
    """A stand-in model 'knows' the tools of its last training set (so it forgets what a round
    does not revisit); the loop, replay, shared first round and the table are real."""
    import contextlib
    from types import SimpleNamespace

    from toolalpaca_utils import evaluation
    from toolalpaca_utils.evaluation import EvalItem, EvalRun
    from toolalpaca_utils.llm import hf

    trained = []

    class Known(frozenset):
        def merge_and_unload(self):
            return self

    def fake_finetune(records, train, *, out_dir, model, tokenizer, keep_model, **params):
        trained.append((model, sorted(e["id"] for e in train), params["seed"]))
        knows = Known(e["tool"] for e in train)
        return SimpleNamespace(model=knows, adapter_dir=knows, global_step=1, final_loss=0.5, train_seconds=1.0)

    class Served:  # serves the stack of adapters: the model knows what its last adapter learnt
        def serve(self, adapters, *, name):
            return contextlib.nullcontext(adapters[-1] if adapters else Known())

    def fake_evaluate(chat, items, records, *, name, max_steps, progress):
        rows = [{"id": it.id, "tool": it.tool, "metrics": {"process_correct": it.tool in chat}} for it in items]
        return EvalRun(name, rows)

    loads = []

    def fake_load(base_model, **kw):
        loads.append(base_model)
        return Known(), "tok"

    monkeypatch.setattr(hf, "load_model_and_tokenizer", fake_load)
    monkeypatch.setattr(hf, "peft_model", lambda model, adapter: adapter)   # merging an adapter: its tools
    monkeypatch.setattr(ste.continual, "finetune", fake_finetune)
    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    examples = [{"id": f"{t}{i}", "tool": t} for t in "ABCD" for i in range(10)]
    items = [EvalItem(f"q{t}", t, "?", [], "real") for t in "ABCD"]
    res = ste.continual_learning({}, examples, items, batches=[["A", "B"], ["C", "D"]], base_model="m",
                                 student=Served(), out_dir=tmp_path, replay_fraction=0.1, seed=3, learning_rate=0.1)
    # round 1 once (shared), round 2 once per condition; each continues from its condition's model
    assert len(trained) == 3 and trained[0][0] == Known() and all(t[2] == 3 for t in trained)
    assert trained[1][0] == trained[2][0] == Known("AB")
    assert trained[1][1] == sorted(f"{t}{i}" for t in "CD" for i in range(10))            # no replay
    replayed = [i for i in trained[2][1] if i[0] in "AB"]
    assert len(replayed) == 2 and len(trained[2][1]) == 22                                 # 10% of 20
    table = res.table()
    assert list(table.columns) == ["batch 1", "batch 2", "seen"]
    assert table.loc[("no replay", 1), "batch 1"] == table.loc[("replay", 1), "batch 1"] == 100.0
    assert pd_isnan(table.loc[("no replay", 1), "batch 2"])                                # not seen yet
    assert table.loc[("no replay", 2), "batch 1"] == 0.0 and table.loc[("no replay", 2), "batch 2"] == 100.0
    assert table.loc[("replay", 2), "batch 1"] > 0.0 and table.loc[("replay", 2), "seen"] > table.loc[("no replay", 2), "seen"]
    assert [t["condition"] for t in res.trainings] == ["no replay", "replay", "no replay", "replay"]
    # no model copy per condition: each training round loads the one base afresh and merges its adapters
    assert loads == ["m", "m", "m"]


def pd_isnan(value) -> bool:
    return value != value


def test_token_cap_bounds_every_request_alike():
    seen = []

    class Model:
        name = "m"

        def chat(self, messages, **kw):
            seen.append(kw["max_tokens"])
            return ChatResult(text="x")

    capped = ste.TokenCap(Model(), 64)
    capped.chat([], max_tokens=120)
    capped.chat([], max_tokens=30)
    capped.chat([], max_tokens=100)
    assert seen == [64, 30, 64] and capped.name == "m"
