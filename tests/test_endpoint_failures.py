"""Teacher-endpoint failures in every stage (toolalpaca_utils.endpoint): which errors count, the
bounded retry and the stop after N items in a row, nothing rejected for an endpoint reason, a
rerun that retries exactly the unfinished items — with scripted doubles, a real HTTP endpoint
that answers error statuses, and a real stand-in server killed and restarted mid-run."""
from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from toolalpaca_utils import ste
from toolalpaca_utils.corpus import read_jsonl
from toolalpaca_utils.endpoint import (
    EndpointFailure, EndpointGuard, EndpointPolicy, EndpointUnreachableError, guard_endpoint, is_endpoint_failure,
)
from toolalpaca_utils.llm import (
    ChatClient, ChatResult, LLMConnectionError, LLMError, LLMOutputError, LLMRequestError, LLMServerCrashed, LLMTimeoutError,
)
from toolalpaca_utils.openapi import build_spec, record_from_spec
from toolalpaca_utils.parallel import run_parallel
from toolalpaca_utils.procs import LIVE, Service, free_port
from toolalpaca_utils.simulation import SimulationConfig, simulate

from doubles import JsonHandler, ScriptedModel, fixed_executor
from openai_standin import reply_for

TESTS = Path(__file__).resolve().parent
QUICK = EndpointPolicy(retries=1, backoff=0.01, max_consecutive=3)
DOWN = "cannot reach the LLM endpoint http://127.0.0.1:1/v1: Connection refused"
ENDPOINT_WORDS = ("user agent failed", "llm error", "cannot reach", "Connection", "HTTP 5", "did not answer")

WEATHER_FUNCTIONS = [
    {"name": "getWeather", "description": "Current weather for a city.",
     "parameters": [{"name": "city", "type": "string", "required": True, "description": "City name"}],
     "output": {"description": "The weather now", "properties": [
         {"name": "temperature", "type": "number", "description": "Degrees"},
         {"name": "summary", "type": "string", "description": "One line"}]}},
]


def weather_records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        name = f"SkyCast{'ABCDEFGH'[i]}"
        spec = build_spec(name, "Weather reports for cities.", WEATHER_FUNCTIONS)
        out.append(record_from_spec(spec, name=name, description="Weather reports for cities.", category="Weather"))
    return out


# ----------------------------------------------------------------------------- classification
@pytest.mark.parametrize("exc, endpoint", [
    (LLMConnectionError("refused"), True),
    (LLMServerCrashed("the embedded server crashed: SIGSEGV"), True),
    (LLMTimeoutError("did not answer within 120s"), True),
    *[(LLMRequestError(f"HTTP {s}", s), True) for s in (500, 502, 503, 504, 401, 403, 404, 408, 429)],
    *[(LLMRequestError(f"HTTP {s}", s), False) for s in (400, 413, 422)],
    (LLMRequestError("invalid JSON schema: ..."), False),      # refused before sending
    (LLMOutputError("output is not valid JSON", "{oops"), False),
    (LLMError("sampled arguments break the schema"), False),
    (ValueError("not an LLM error"), False),
    (EndpointFailure(LLMConnectionError("refused")), True),
])
def test_classification_of_each_error(exc, endpoint):
    assert is_endpoint_failure(exc) is endpoint


class _StatusHandler(JsonHandler):
    def do_POST(self):  # noqa: N802 — the base URL names the status: /<status>/chat/completions
        status = int(self.path.split("/")[1])
        self.send_json(status, {"error": {"message": f"status {status}"}})


def test_the_client_classifies_real_http_statuses():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for status, endpoint in [(503, True), (500, True), (401, True), (404, True), (429, True),
                                 (400, False), (422, False)]:
            client = ChatClient(f"http://127.0.0.1:{port}/{status}", "m", max_retries=0, timeout=5)
            with pytest.raises(LLMRequestError) as info:
                client.chat([{"role": "user", "content": "hi"}], max_tokens=4)
            assert info.value.status_code == status and is_endpoint_failure(info.value) is endpoint, status
            with pytest.raises(LLMRequestError) as info:  # a raw completion (the chat prompt format) alike
                client.complete("hi", max_tokens=4)
            assert info.value.status_code == status and is_endpoint_failure(info.value) is endpoint, status
    finally:
        server.shutdown()
        server.server_close()
    dead = ChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=0, timeout=5)
    with pytest.raises(LLMConnectionError) as info:
        dead.chat([{"role": "user", "content": "hi"}], max_tokens=4)
    assert is_endpoint_failure(info.value)


class FlakyModel(ScriptedModel):
    """The scripted teacher with an endpoint that fails: for calls ``fail_from`` .. ``fail_until``
    (1-based, ``fail_until`` None: for good), or on every call while ``down``."""

    def __init__(self, texts=("",), *, fail_from: int | None = None, fail_until: int | None = None,
                 error: LLMError | None = None):
        super().__init__(texts)
        self.fail_from, self.fail_until, self.down = fail_from, fail_until, False
        self.error = error or LLMConnectionError(DOWN)
        self.failed = 0

    def chat(self, messages, *, schema=None, **gen):
        n = self.calls + self.failed + 1
        if self.down or (self.fail_from is not None and n >= self.fail_from
                         and (self.fail_until is None or n <= self.fail_until)):
            self.failed += 1
            raise self.error
        return super().chat(messages, schema=schema, **gen)


def test_the_guard_turns_only_endpoint_failures_into_endpoint_failure():
    model = FlakyModel(["ok"])
    guarded = guard_endpoint(model)
    assert guard_endpoint(guarded) is guarded and isinstance(guarded, EndpointGuard)
    assert guarded.chat([{"role": "user", "content": "x"}]).text == "ok"
    assert guarded.texts == ["ok"] and guarded.calls == 1  # other attributes are the client's
    model.down = True
    with pytest.raises(EndpointFailure) as info:
        guarded.chat([{"role": "user", "content": "x"}])
    assert not isinstance(info.value, LLMError) and isinstance(info.value.error, LLMConnectionError)
    model.error = LLMRequestError("rejected the JSON schema (HTTP 400)", 400)
    with pytest.raises(LLMRequestError):  # the request's fault: passes unchanged
        guarded.chat([{"role": "user", "content": "x"}])
    model.complete = lambda prompt, **gen: (_ for _ in ()).throw(LLMConnectionError(DOWN))
    with pytest.raises(EndpointFailure):  # complete is guarded too, not handed out bare by __getattr__
        guarded.complete("x")


# ----------------------------------------------------------------------------- run_parallel
def _work_failing(failing: set, tries: Counter, *, heal_after: int | None = None):
    def work(item):
        tries[item] += 1
        if item in failing and (heal_after is None or tries[item] <= heal_after):
            raise EndpointFailure(LLMConnectionError(f"{DOWN} (item {item})"))
        yield item * 10
    return work


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("ordered", [False, True])
def test_stop_after_n_items_in_a_row_keeps_what_finished(workers, ordered):
    kept, tries = [], Counter()
    with pytest.raises(EndpointUnreachableError) as info:
        run_parallel(range(20), _work_failing(set(range(2, 20)), tries), kept.append, workers=workers,
                     ordered=ordered, progress=False, endpoint=QUICK.for_stage(None, kept="memory"))
    assert sorted(kept) == [0, 10] and info.value.consecutive == 3
    assert sum(tries[i] == QUICK.retries + 1 for i in tries if i >= 2) >= 3  # tried, then retried once
    assert len(tries) <= 2 + 3 + workers  # no item starts after the stop (running ones finish)
    message = str(info.value)
    assert "3 work items in a row" in message and DOWN in message and "To resume" in message
    assert "Kept: everything finished in memory" in message


def test_a_success_resets_the_count_and_a_retry_can_succeed():
    kept, tries = [], Counter()
    failing = {1, 2, 4, 5, 7, 8}  # never three in a row: the run goes on, but does not end as if whole
    with pytest.raises(EndpointUnreachableError, match="6 of 10 items failed") as info:
        run_parallel(range(10), _work_failing(failing, tries), kept.append, progress=False, endpoint=QUICK)
    # the last round meets three dead items in a row and stops: the three it did not reach stay missing too
    assert kept == [0, 30, 60, 90] and info.value.missing == [1, 2, 4, 5, 7, 8]
    kept, tries = [], Counter()
    with pytest.raises(EndpointUnreachableError, match="incomplete: 2 work items") as info:
        run_parallel(range(10), _work_failing({2, 6}, tries), kept.append, workers=3, progress=False,
                     endpoint=QUICK, label=lambda i: f"item-{i}")
    assert sorted(kept) == [0, 10, 30, 40, 50, 70, 80, 90] and info.value.missing == [2, 6]
    assert "item-2, item-6" in str(info.value) and "To resume" in str(info.value)
    assert tries[2] == tries[6] == 2 * (QUICK.retries + 1)  # its retries, then the last round's
    kept, tries = [], Counter()  # failures that outlast an item's retries but not the run: the last round
    run_parallel(range(6), _work_failing({1, 4}, tries, heal_after=QUICK.retries + 1), kept.append,
                 workers=3, progress=False, endpoint=QUICK)
    assert sorted(kept) == [0, 10, 20, 30, 40, 50] and tries[1] == tries[4] == QUICK.retries + 2
    kept, tries = [], Counter()  # a transient failure: the retry finishes the item, in its place
    run_parallel(range(5), _work_failing({0, 1, 2, 3}, tries, heal_after=1), kept.append, progress=False,
                 endpoint=QUICK)
    assert kept == [0, 10, 20, 30, 40] and tries == Counter({0: 2, 1: 2, 2: 2, 3: 2, 4: 1})


def test_other_errors_pass_and_a_healthy_run_is_unchanged():
    def broken(item):
        raise LLMOutputError("garbage")

    with pytest.raises(LLMOutputError):
        run_parallel([1], broken, print, progress=False, endpoint=QUICK)
    for workers, ordered in [(1, False), (3, True), (3, False)]:
        runs = []
        for endpoint in (None, QUICK):
            kept: list = []
            run_parallel(range(12), lambda i: [i, -i], kept.append, workers=workers, ordered=ordered,
                         progress=False, endpoint=endpoint)
            runs.append(kept if ordered or workers == 1 else sorted(kept))
        assert runs[0] == runs[1]


# ----------------------------------------------------------------------------- the stages
SIM_TEXTS = ["1. What is the weather in Oslo today?\n2. Is it raining in Lima right now?", "Thought: hmm",
             "total garbage {"]
SIM_CFG = SimulationConfig(instructions_per_tool=2, strategy="instruction-first", mode="free", n_eval_tools=0)
OK_EXECUTOR = fixed_executor(200, 'Status Code: 200. Response: {"temperature": 21, "summary": "Sunny"}')


class StandInModel(FlakyModel):
    """The flaky teacher answering as the stand-in server does (the same reply for the same request
    shape, so every tool costs the same calls)."""

    def reply(self, messages, schema):
        text = reply_for(messages)
        return ChatResult(text=text, parsed=json.loads(text) if schema is not None else None,
                          completion_tokens=len(text) // 4)


def _sim_rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for s in ("train", "eval", "rejects") for r in read_jsonl(out / f"{s}.jsonl")}


def test_simulation_records_no_endpoint_reject_and_a_rerun_does_exactly_the_rest(tmp_path):
    records = weather_records(5)
    executors = {r["Name"]: OK_EXECUTOR for r in records}
    healthy = StandInModel()
    simulate(healthy, records[:1], SIM_CFG, out_dir=tmp_path / "probe", progress=False, executors=executors)
    per_tool = healthy.calls
    assert per_tool == 5  # the user agent's list, then a call and an answer per instance
    # the endpoint dies after the second tool's first instance, for good
    model = StandInModel(fail_from=per_tool + 4)
    with pytest.raises(EndpointUnreachableError, match="3 work items in a row") as info:
        simulate(model, records, SIM_CFG, out_dir=tmp_path / "run", progress=False, executors=executors,
                 endpoint=QUICK)
    assert str(tmp_path / "run") in str(info.value) and DOWN in str(info.value)
    before = _sim_rows(tmp_path / "run")
    assert not any(any(w in (r["drop_reason"] or "") for w in ENDPOINT_WORDS) for r in before.values())
    assert Counter(r["tool"] for r in before.values()) == {records[0]["Name"]: 2, records[1]["Name"]: 1}
    # the rerun with a working endpoint: every instance exactly once, nothing finished redone
    again = StandInModel()
    res = simulate(again, records, SIM_CFG, out_dir=tmp_path / "run", progress=False, executors=executors,
                   endpoint=QUICK)
    assert again.calls == 1 + 2 + 3 * per_tool  # the second tool's list and its last instance, three more tools
    after = _sim_rows(tmp_path / "run")
    ids = [r["id"] for s in ("train", "eval", "rejects") for r in read_jsonl(tmp_path / "run" / f"{s}.jsonl")]
    assert len(ids) == len(set(ids)) == 10 and sum(res.counts.values()) == 10
    assert all(after[i] == row for i, row in before.items())


def test_a_model_output_failure_is_still_a_reject_with_its_reason(tmp_path):
    res = simulate(ScriptedModel(SIM_TEXTS), weather_records(2), SIM_CFG, out_dir=tmp_path, progress=False,
                   endpoint=QUICK)
    rejects = read_jsonl(tmp_path / "rejects.jsonl")
    assert res.counts["rejects"] == 4 and all(r["drop_reason"] for r in rejects)
    assert not any(any(w in r["drop_reason"] for w in ENDPOINT_WORDS) for r in rejects)


def test_a_request_the_endpoint_refuses_is_still_a_reject(tmp_path):
    model = FlakyModel(SIM_TEXTS, fail_from=1, error=LLMRequestError("rejected the request (HTTP 400): too long", 400))
    res = simulate(model, weather_records(4), SIM_CFG, out_dir=tmp_path, progress=False, endpoint=QUICK)
    rejects = read_jsonl(tmp_path / "rejects.jsonl")
    assert res.counts["rejects"] == 8 and all("HTTP 400" in r["drop_reason"] for r in rejects)


# the explorer of test_ste, reused
from test_ste import ExplorerModel, fake_executor  # noqa: E402


class FlakyExplorer(ExplorerModel):
    def __init__(self, fail_from: int | None = None, fail_until: int | None = None):
        super().__init__()
        self.n, self.fail_from, self.fail_until = 0, fail_from, fail_until

    def chat(self, messages, *, schema=None, **gen):
        self.n += 1
        if self.fail_from is not None and self.n >= self.fail_from and (self.fail_until is None or self.n <= self.fail_until):
            raise LLMTimeoutError("http://127.0.0.1:1/v1 did not answer within 120s")
        return super().chat(messages, schema=schema, **gen)


@pytest.fixture(scope="module")
def shelf_records():
    from toolalpaca_utils.corpus import load_tools

    record = load_tools(TESTS / "fixtures" / "corpus_small")["ShelfSearch"]
    return [{**record, "Name": f"ShelfSearch{c}"} for c in "ABCDE"]


def test_exploration_stops_keeps_its_trials_and_retries_exactly_the_rest(shelf_records, tmp_path):
    cfg = ste.ExploreConfig(episodes=2, trials=2)
    healthy = ExplorerModel()
    expected = ste.explore(healthy, shelf_records, cfg, executor=fake_executor, progress=False)
    per_tool = len(healthy.requests) // len(shelf_records)
    out = tmp_path / "trials.jsonl"
    with pytest.raises(EndpointUnreachableError) as info:  # dies inside the second tool's first episode
        ste.explore(FlakyExplorer(fail_from=per_tool + 7), shelf_records, cfg, out_path=out,
                    executor=fake_executor, progress=False, endpoint=QUICK)
    assert str(out) in str(info.value)
    before = read_jsonl(out)
    assert 4 < len(before) < 8 and not any(r["stop_reason"].startswith("imagination failed") or
                                           r.get("reflection_error") for r in before)
    rows = ste.explore(ExplorerModel(), shelf_records, cfg, out_path=out, executor=fake_executor,
                       progress=False, endpoint=QUICK)
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == 20 and [r["id"] for r in rows] == [r["id"] for r in expected]
    assert read_jsonl(out)[:len(before)] == before
    # a transient failure in the middle of a tool: the retry resumes at the trial that failed
    out2 = tmp_path / "transient.jsonl"
    flaky = FlakyExplorer(fail_from=per_tool + 7, fail_until=per_tool + 7)
    rows = ste.explore(flaky, shelf_records, cfg, out_path=out2, executor=fake_executor, progress=False,
                       endpoint=QUICK)
    assert [r["id"] for r in read_jsonl(out2)] == [r["id"] for r in expected] == [r["id"] for r in rows]


# ----------------------------------------------------------------------------- a real server, killed
class StandIn(Service):
    """tests/openai_standin.py on a free loopback port (FastAPI + uvicorn, in its own process group)."""

    def __init__(self, log_dir: Path, delay: float):
        super().__init__("OpenAI stand-in", startup_timeout=30.0, poll=0.05)
        self.port, self.killed = free_port(), False
        self.launch([sys.executable, str(TESTS / "openai_standin.py"), "--port", str(self.port), "--delay", str(delay)],
                    log_path=log_dir / f"standin-{self.port}.log", health_url=f"{self.url}/health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> ChatClient:
        return ChatClient(self.url + "/v1", "standin", max_retries=0, timeout=5)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)
        self.killed = True
        LIVE.discard(self)

    def stop(self, grace: float = 5.0) -> None:
        if not self.killed:
            super().stop(grace)


def _kill_when(server: StandIn, has_rows, deadline: float = 30.0) -> threading.Thread:
    """Kill ``server`` as soon as ``has_rows()`` (the first work item is on disk)."""
    def watch():
        end = time.monotonic() + deadline
        while time.monotonic() < end and not has_rows():
            time.sleep(0.01)
        server.kill()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_stand_in_still_answers_the_stages_request_shapes():
    import openai_standin as s
    from toolalpaca_utils.agents.episode import ANSWER_SYSTEM, FINAL_NUDGE

    assert FINAL_NUDGE.startswith(s.FINAL_NUDGE) and ANSWER_SYSTEM == s.ANSWER_SYSTEM
    assert ste.REFLECTION_QUESTION.startswith(s.REFLECTION_QUESTION) and ste.IMAGINE_SYSTEM.startswith(s.IMAGINE_SYSTEM)


def test_kill_and_restart_the_server_mid_run(tmp_path):  # ~4 s: not marked slow
    """Simulation and STE exploration against a real server killed after the first item is on disk:
    the stage stops with the clear error, nothing is rejected for the endpoint; a rerun against a
    restarted server (a new port, a new client) completes with every item exactly once."""
    records = weather_records(4)
    executors = {r["Name"]: OK_EXECUTOR for r in records}
    policy = EndpointPolicy(retries=1, backoff=0.05, max_consecutive=3)
    cfg = SIM_CFG
    # --- simulation
    out = tmp_path / "sim"
    server = StandIn(tmp_path, delay=0.1)
    try:
        watcher = _kill_when(server, lambda: bool(_sim_rows(out)))
        with pytest.raises(EndpointUnreachableError, match="3 work items in a row") as info:
            simulate(server.client(), records, cfg, out_dir=out, progress=False, executors=executors, endpoint=policy)
        watcher.join()
    finally:
        server.stop()
    assert server.url in str(info.value) and str(out) in str(info.value)
    before = _sim_rows(out)
    assert 1 <= len(before) < 8
    assert not any(any(w in (r["drop_reason"] or "") for w in ENDPOINT_WORDS) for r in before.values())
    server = StandIn(tmp_path, delay=0.0)
    try:
        res = simulate(server.client(), records, cfg, out_dir=out, progress=False, executors=executors,
                       endpoint=policy)
    finally:
        server.stop()
    ids = [r["id"] for s in ("train", "eval", "rejects") for r in read_jsonl(out / f"{s}.jsonl")]
    assert len(ids) == len(set(ids)) == 8 and sum(res.counts.values()) == 8
    after = _sim_rows(out)
    assert all(after[i] == row for i, row in before.items()) and res.counts["train"] == 8
    # --- STE exploration
    ecfg = ste.ExploreConfig(episodes=1, trials=2, imagination="query", mode="free")
    trials = tmp_path / "trials.jsonl"
    server = StandIn(tmp_path, delay=0.1)
    try:
        watcher = _kill_when(server, lambda: bool(read_jsonl(trials)))
        with pytest.raises(EndpointUnreachableError, match="3 work items in a row"):
            ste.explore(server.client(), records, ecfg, out_path=trials, executor=OK_EXECUTOR,
                        progress=False, endpoint=policy)
        watcher.join()
    finally:
        server.stop()
    before = read_jsonl(trials)
    assert 1 <= len(before) < 8 and not any(r["stop_reason"].startswith("imagination failed") or
                                            r.get("reflection_error") for r in before)
    server = StandIn(tmp_path, delay=0.0)
    try:
        rows = ste.explore(server.client(), records, ecfg, out_path=trials, executor=OK_EXECUTOR,
                           progress=False, endpoint=policy)
    finally:
        server.stop()
    ids = [r["id"] for r in read_jsonl(trials)]
    assert len(ids) == len(set(ids)) == 8 and len(rows) == 8 and read_jsonl(trials)[:len(before)] == before
    assert all(r["reflection"] == "Yes" and r["n_ok_calls"] == 1 for r in rows)
