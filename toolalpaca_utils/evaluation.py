"""Stage 4: evaluation on tools the model never saw, with deterministic metrics and an LLM judge.

A model under test (the student served by an engine, with or without its adapter:
:func:`~toolalpaca_utils.llm.open_student`) runs the same ReAct episode as the simulation, with the same prompt, against
(a) the unseen simulated tools (their calls answered by the simulated executor), (b) the real
tools (answered for real over HTTP), or (c) any ToolAlpaca-format eval file. Every metric is
over *all* instances: an episode that crashed or never answered counts as a failure.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .agents import Episode, SimulatedExecutor, Trajectory, chat_renderer, drive, executor_for
from .agents.chat_prompt import check_chat_options
from .agents.episode import check_mode
from .corpus import load_split, load_tools
from .endpoint import EndpointPolicy, EndpointUnreachableError, guard_endpoint, is_endpoint_failure
from .llm import LLMError
from .react import GET_DETAILS
from .runs import append_jsonl, read_jsonl

METRICS = ("well_formed", "api_match", "argument_match", "process_correct", "response_given", "overall")
PLACEHOLDER = re.compile(r"^\$\{.*\}$")


@dataclass
class EvalItem:
    id: str
    tool: str
    instruction: str
    golden: list[dict]          # [{"Action", "Action_Input" (JSON text)}]
    source: str                 # "simulated" | "real" | a file name


# =========================================================================== eval sets
def items_from_corpus(corpus_dir: str | Path) -> tuple[list[EvalItem], dict[str, dict]]:
    """The evaluation split of a simulation corpus (tools unseen in its training split)."""
    tools = load_tools(corpus_dir)
    items = [EvalItem(r["id"], r["tool"], r["instruction"], r["golden"], "simulated")
             for r in load_split(corpus_dir, "eval")]
    return items, {name: rec for name, rec in tools.items() if any(i.tool == name for i in items)}


def items_from_real(base_url: str) -> tuple[list[EvalItem], dict[str, dict]]:
    """The hand-written real-tool evaluation set, with records pointing at ``base_url``."""
    from .realtools import load_real_eval, real_tool_records

    records = {r["Name"]: r for r in real_tool_records(base_url=base_url)}
    items = [EvalItem(x["id"], x["tool"], x["instruction"], x["golden"], "real") for x in load_real_eval()]
    return items, records


def spread_over_tools(items: Sequence, n: int | None) -> list:
    """At most ``n`` items taken round-robin over the tools (file order within a tool), so a cap
    keeps every tool in the set instead of the first few; ``n`` 0/None keeps all. Items are
    EvalItems or result rows (dicts with a "tool")."""
    if not n or n >= len(items):
        return list(items)
    by_tool: dict[str, list] = {}
    for it in items:
        by_tool.setdefault(it["tool"] if isinstance(it, dict) else it.tool, []).append(it)
    picked: list[EvalItem] = []
    for rank in range(max(len(v) for v in by_tool.values())):
        for group in by_tool.values():
            if rank < len(group) and len(picked) < n:
                picked.append(group[rank])
    keep = {id(it) for it in picked}
    return [it for it in items if id(it) in keep]


def items_from_toolalpaca_file(path: str | Path, *, base_url: str | None = None) -> tuple[list[EvalItem], dict]:
    """A ToolAlpaca-format eval file: tool records with ``Instructions`` and ``Golden_Answers``."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of tool records")
    items, records = [], {}
    for rec in data:
        missing = [k for k in ("Name", "Documentation", "Instructions", "Golden_Answers") if k not in rec]
        if missing:
            raise ValueError(f"{path}: tool {rec.get('Name', '?')!r} lacks {', '.join(missing)}")
        from .openapi import record_from_spec, record_spec

        full = record_from_spec(record_spec(rec), name=rec["Name"], description=rec.get("Description", ""),
                                category=rec.get("Category", ""), link=rec.get("Link", ""),
                                source="import", base_url=base_url)
        records[rec["Name"]] = full
        for k, (instr, gold) in enumerate(zip(rec["Instructions"], rec["Golden_Answers"])):
            items.append(EvalItem(f"{rec['Name']}-{k}", rec["Name"], instr, list(gold), Path(path).name))
    return items, records


# =========================================================================== metrics
def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(float(value))
    text = str(value).strip().lower()
    try:
        return repr(float(text))
    except ValueError:
        return " ".join(text.split())


def _as_dict(text: Any) -> dict | None:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except (TypeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def arguments_match(golden_input: Any, predicted_input: Any) -> bool:
    """Every golden value is present in the prediction after normalisation (case, spaces,
    numbers as floats); ``${…}`` placeholders match any value; extra keys are allowed."""
    gold, pred = _as_dict(golden_input), _as_dict(predicted_input)
    if gold is None or pred is None:
        return False
    for key, value in gold.items():
        if isinstance(value, str) and PLACEHOLDER.match(value.strip()):
            if key not in pred:
                return False
            continue
        if key not in pred or _norm(pred[key]) != _norm(value):
            return False
    return True


def score(traj: Trajectory | None, golden: list[dict]) -> dict:
    """Deterministic metrics of one episode (a crashed episode, ``None``, fails everything)."""
    if traj is None:
        return {m: False for m in METRICS} | {"failure": "crashed"}
    attempted = [s for s in traj.steps if s.action not in (None, GET_DETAILS)]
    calls = [s for s in attempted if s.valid]  # executed: known function, schema-valid arguments
    # every model turn parsed into an action with a JSON object input, or a final answer
    well_formed = bool(traj.steps or traj.final) and not traj.stop_reason.startswith("llm error") and \
        all(s.action is not None for s in traj.steps)
    # golden steps matched in order: by name (API match) and by name + arguments (process)
    api_ok = _in_order([g["Action"] for g in golden], [s.action for s in attempted], lambda a, b: a == b)
    pairs = [(s.action, s.action_input) for s in calls]
    process = _in_order([(g["Action"], g["Action_Input"]) for g in golden], pairs,
                        lambda g, p: g[0] == p[0] and arguments_match(g[1], p[1]))
    args_ok = process or (api_ok and _all_args_somewhere(golden, pairs))
    response = bool(traj.final and traj.final.get("answer", "").strip())
    result = {"well_formed": well_formed, "api_match": api_ok, "argument_match": args_ok,
              "process_correct": process, "response_given": response, "overall": process and response}
    result["failure"] = failure_type(traj, result)
    return result


def _in_order(golden: Sequence, predicted: Sequence, same) -> bool:
    it = iter(predicted)
    return all(any(same(g, p) for p in it) for g in golden)


def _all_args_somewhere(golden: list[dict], pairs: list[tuple[str, str]]) -> bool:
    return all(any(g["Action"] == a and arguments_match(g["Action_Input"], i) for a, i in pairs) for g in golden)


def failure_type(traj: Trajectory, metrics: dict) -> str:
    """One label per instance for the failure breakdown."""
    if metrics["overall"]:
        return "ok"
    if traj.stop_reason.startswith("llm error"):
        return "model error"
    if any(s.action is None for s in traj.steps) and not metrics["api_match"]:
        return "unparseable"
    if not metrics["api_match"]:
        executed = [s for s in traj.steps if s.action not in (None, GET_DETAILS)]
        if executed and all(s.error and (s.error.startswith("http") or s.error.startswith("executor")) for s in executed):
            return "executor error"
        return "wrong API"
    if not metrics["process_correct"]:
        return "wrong arguments"
    return "no answer"


# =========================================================================== running a model
@dataclass
class EvalRun:
    name: str
    rows: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        n = len(self.rows)
        out = {"model": self.name, "n": n}
        for m in METRICS:
            out[m] = round(100 * sum(r["metrics"][m] for r in self.rows) / n, 1) if n else 0.0
        return out


def by_tool(items: Iterable[EvalItem]) -> list[tuple[EvalItem, ...]]:
    """``items`` as one work unit per tool, its items in order. A worker runs a unit's episodes one
    after another on its own engine replica, which then reads the tool's documentation once: llama.cpp
    keeps the longest prefix a request shares with the one before (with items merely sorted by tool,
    two workers took turns and most first steps read it again)."""
    groups: dict[str, list[EvalItem]] = {}
    for item in items:
        groups.setdefault(item.tool, []).append(item)
    return [tuple(group) for _, group in sorted(groups.items())]


def evaluate(model, items: Sequence[EvalItem], records: dict[str, dict], *, name: str, teacher=None,
             mode: str = "free", max_steps: int = 4, out_path: str | Path | None = None,
             progress: bool = True, workers: int | None = None, endpoint: EndpointPolicy | None = None,
             prompt_format: str = "react", render=None, tool_choice: str = "auto", thought: str = "free",
             retriever=None) -> EvalRun:
    """Run ``model`` (a ChatClient, e.g. :func:`~toolalpaca_utils.llm.open_student`) on every item
    and score it. ``teacher`` (a ChatClient) plays simulated tools and the user; real tools are
    called over HTTP. ``workers`` episodes run at once (default: one per model replica, or the
    endpoint's concurrency), each row appended to ``out_path`` as its episode ends, so an
    interrupted run resumes per row. ``mode`` "constrained" decodes every step under the tool's
    JSON schema (:func:`~toolalpaca_utils.react.step_schema`); "grounded" does too, and the first
    step's free string values are among those the request says
    (:func:`~toolalpaca_utils.saying.readings`); "retrieved" is grounded, and ``retriever``
    (default: a :class:`~toolalpaca_utils.function_retrieval.FunctionRetriever`) picks the first
    call's function, the model its arguments. ``prompt_format`` "chat" prompts in
    the tool-calling chat the student was trained on with ``prompt_format="chat"``: ``render``
    (default: :func:`~toolalpaca_utils.agents.chat_renderer` of the default student) writes each
    prompt and ``model.complete`` continues it; free decoding only. ``tool_choice`` "required"
    makes a constrained episode's first step a call, ``thought`` "documented" binds the thought
    before a call to the function's documentation line (:class:`~toolalpaca_utils.agents.Episode`).

    An episode whose model or teacher endpoint failed (a crashed server, a timeout, a 5xx) is not a
    model failure: it is retried with back-off and, if the endpoint stays down, left unrecorded
    (a rerun retries it) and the evaluation stops with ``EndpointUnreachableError`` after a few in
    a row (``endpoint``: :class:`~toolalpaca_utils.endpoint.EndpointPolicy`). Items left so here
    and there are tried once more at the end; any still unscored end the evaluation with the same
    error, naming them: an ``EvalRun`` always holds every item."""
    from .parallel import run_parallel, worker_count

    check_chat_options(prompt_format, check_mode(mode))  # a wrong setting stops here, not as a crashed row per item
    render = _chat_render(model, render) if prompt_format == "chat" else render
    retriever = _retriever_for(mode, retriever)
    done = {r["id"]: r for r in read_jsonl(out_path)} if out_path else {}
    guarded, guarded_teacher = guard_endpoint(model), guard_endpoint(teacher)
    simulated = SimulatedExecutor(guarded_teacher) if teacher is not None else None
    todo, finished, failed = by_tool(it for it in items if it.id not in done), set(done), set()

    def run_one(item: EvalItem) -> dict:
        return _run_item(guarded, item, records, simulated=simulated, teacher=guarded_teacher, mode=mode,
                         max_steps=max_steps, name=name, tool_choice=tool_choice, thought=thought,
                         chat={"prompt_format": prompt_format, "render": render}, retriever=retriever)

    def keep(row: dict) -> None:
        done[row["id"]] = row
        if out_path:
            append_jsonl(out_path, [row])

    policy = (endpoint or EndpointPolicy()).for_stage(
        model, kept=str(out_path or "memory"), resume="run the evaluation again with the same settings")
    try:
        run_parallel(todo, lambda group: _episodes(group, finished, failed, run_one), keep,
                     workers=worker_count(model, workers), desc=name, unit="episode", total=sum(map(len, todo)), progress=progress, endpoint=policy,
                     label=lambda group: ", ".join(it.id for it in group if it.id not in finished))
    except EndpointUnreachableError as exc:
        exc.missing = [it for group in exc.missing for it in group if it.id not in finished]  # items, not tools
        raise
    return EvalRun(name, [done[it.id] for it in items if it.id in done])


def _chat_render(model, render):
    """The renderer of ``prompt_format="chat"`` (default: the default student's), for a model that continues prompts."""
    if not callable(getattr(model, "complete", None)):
        raise TypeError(f'prompt_format "chat" needs a model with complete(prompt, ...); {type(model).__name__} has none')
    return render or chat_renderer()


def _retriever_for(mode: str, retriever):
    """The function retriever decoding ``mode`` uses: None unless "retrieved" (evaluate_grid hands one
    retriever to every decoding; alone, a new one)."""
    if mode != "retrieved":
        return None
    if retriever is None:
        from .function_retrieval import FunctionRetriever

        retriever = FunctionRetriever()
    return retriever


def _episodes(group: tuple[EvalItem, ...], finished: set, failed: set, run_one) -> Iterator[dict]:
    """The rows of ``group``'s items not yet ``finished``, one after another; the items whose endpoint
    failed before (``failed``, ids) come last. An endpoint failure ends the group at once, so a
    server that hangs costs one timeout a try, not one an item; the stage tries the group again
    (only what is left) with the failed items after the others, so a request the endpoint always
    fails (a 5xx of its own) costs a try, and the tool's other items run in the next."""
    for item in sorted((it for it in group if it.id not in finished), key=lambda it: it.id in failed):
        try:
            row = run_one(item)
        except Exception as exc:
            if is_endpoint_failure(exc):
                failed.add(item.id)
            raise
        finished.add(item.id)
        yield row


def evaluate_grid(student_model: str, adapters: dict[str, Any], sets: dict[str, tuple[list, dict]], *,
                  out_dir: str | Path, teacher=None, decodings: Sequence[str] = ("free",), max_steps: int = 3,
                  judge_items: int | None = None, seed: int = 0, progress: bool = True,
                  prompt_format: str = "react", tool_choice: str = "auto", thought: str = "free",
                  **student: Any) -> tuple[list[tuple[str, EvalRun]], dict]:
    """Every model × decoding × set: ``adapters`` maps a model name to its adapter (None: the
    base model), ``sets`` a set name to (items, records). Each model is served once
    (:func:`~toolalpaca_utils.llm.open_student`; ``student``: its endpoint, dialect, replicas) and
    each run resumes from ``out_dir/<model>-<decoding>-<set>.jsonl``. With ``judge_items`` (0:
    every row) the teacher also judges a tool-balanced sample of each run. ``prompt_format`` is the
    format the adapters were trained in ("react" | "chat", see :func:`evaluate`), ``tool_choice``
    and ``thought`` those of constrained decoding (see :func:`evaluate`). Returns
    ``[(set, run)]`` and ``{(set, run name): (judged rows, verdicts)}``."""
    from .llm import open_student

    for decoding in decodings:  # before any model is served
        check_chat_options(prompt_format, check_mode(decoding))
    render = chat_renderer(student_model) if prompt_format == "chat" else None
    retriever = None
    if "retrieved" in decodings:  # one embedder for every model and set
        from .function_retrieval import FunctionRetriever

        retriever = FunctionRetriever()
    runs, judged = [], {}
    out_dir = Path(out_dir)
    for model_name, adapter in adapters.items():
        with open_student(student_model, adapter, name=model_name, work_dir=out_dir / "served", **student) as model:
            for decoding in decodings:
                label = f"{model_name} · {decoding}"
                for set_name, (items, records) in sets.items():
                    run = evaluate(model, items, records, name=label, teacher=teacher, mode=decoding,
                                   max_steps=max_steps, out_path=out_dir / f"{model_name}-{decoding}-{set_name}.jsonl",
                                   progress=progress, prompt_format=prompt_format, render=render,
                                   tool_choice=tool_choice, thought=thought, retriever=retriever)
                    runs.append((set_name, run))
                    if judge_items is not None and teacher is not None:
                        sample = spread_over_tools(run.rows, judge_items)
                        judged[(set_name, label)] = (sample, judge(teacher, sample, records, seed=seed))
    return runs, judged


def _run_item(model, item: EvalItem, records: dict, *, simulated, teacher, mode: str, max_steps: int,
              name: str, chat: dict | None = None, tool_choice: str = "auto", thought: str = "free",
              retriever=None) -> dict:
    """One item's episode to its end, as a result row; a tool that cannot be run is a crashed row.
    ``retriever`` (decoding "retrieved") picks the first call's function."""
    rec = records.get(item.tool)
    try:
        if rec is None:
            raise KeyError(f"no tool record for {item.tool!r}")
        first = retriever.choose(rec, item.instruction) if retriever is not None else None
        episode = Episode(rec, item.instruction, executor_for(rec, simulated), mode=mode, max_steps=max_steps,
                          user_client=teacher, seed=0, tool_choice=tool_choice, thought=thought,
                          first_function=first, **(chat or {}))
    except (KeyError, ValueError) as exc:
        return {**_row(item, None, name), "error": str(exc)}
    return _row(item, drive(model, episode), name)


def _row(item: EvalItem, traj: Trajectory | None, name: str) -> dict:
    return {
        "id": item.id, "tool": item.tool, "source": item.source, "model": name, "instruction": item.instruction,
        "golden": item.golden, "metrics": score(traj, item.golden),
        "steps": [s.as_dict() for s in traj.steps] if traj else [], "final": traj.final if traj else None,
        "stop_reason": traj.stop_reason if traj else "crashed",
    }


# =========================================================================== LLM judge
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"process": {"enum": ["Yes", "No", "Uncertain"]},
                   "response": {"enum": ["Yes", "No", "Uncertain"]}},
    "required": ["process", "response"],
}


def judge_prompt(row: dict, record: dict) -> list[dict]:
    """The reference's protocol: documentation, instruction, golden steps, the trajectory;
    two questions, each Yes / No / Uncertain."""
    # bounded: the judge reads the whole prompt for every verdict (about 500 tokens here)
    steps = "\n".join(f"{s['text'][:300]}\nObservation: {s['observation'][:200]}" for s in row["steps"]) or "(no steps)"
    final = (row.get("final") or {}).get("answer", "(no final answer)")
    golden = "\n".join(f"{g['Action']} {g['Action_Input']}" for g in row["golden"])
    return [
        {"role": "system", "content": "You grade how an AI assistant used an API. Answer as JSON."},
        {"role": "user", "content": (
            f"API documentation:\n{record.get('NLDocumentation', '')[:800]}\n\nUser request: {row['instruction']}\n\n"
            f"Reference solution (the calls a correct solution makes):\n{golden}\n\n"
            f"The assistant's steps:\n{steps}\nFinal answer: {final}\n\n"
            "process: did the assistant make the calls the request needs, with the right arguments? "
            "response: does the final answer satisfy the request, faithful to the observations? "
            "Answer each with Yes, No or Uncertain.")},
    ]


def judge(client, rows: list[dict], records: dict[str, dict], *, seed: int = 0) -> list[dict]:
    """Judge verdicts per row: {"process", "response", "overall"} (overall = both Yes); a judge
    failure is recorded as Uncertain with the reason, never dropped."""
    verdicts: list[dict | None] = [None] * len(rows)
    requests, where = [], []
    for i, row in enumerate(rows):
        record = records.get(row["tool"])
        if record is None:
            verdicts[i] = {"process": "Uncertain", "response": "Uncertain", "error": f"no tool record for {row['tool']!r}"}
            continue
        requests.append({"messages": judge_prompt(row, record), "schema": JUDGE_SCHEMA, "seed": seed, "max_tokens": 30})
        where.append(i)
    # as many verdicts in flight as the judge has replicas; a failure comes back as its exception
    for i, res in zip(where, client.chat_many(requests)):
        if isinstance(res, LLMError):
            verdicts[i] = {"process": "Uncertain", "response": "Uncertain", "error": str(res)[:200]}
        else:
            verdicts[i] = {**res.parsed, "error": None}
    for v in verdicts:
        v["overall"] = v["process"] == "Yes" and v["response"] == "Yes"
    return verdicts  # type: ignore[return-value]


def agreement_table(rows: list[dict], verdicts: list[dict]):
    """Judge overall vs deterministic overall: a 2×2 count table and the agreement rate."""
    import pandas as pd

    frame = pd.DataFrame({"deterministic": [r["metrics"]["overall"] for r in rows],
                          "judge": [v["overall"] for v in verdicts]})
    table = pd.crosstab(frame.deterministic, frame.judge, dropna=False)
    agreement = float((frame.deterministic == frame.judge).mean()) if len(frame) else 0.0
    return table, agreement


def results_frame(runs: Sequence[tuple[str, EvalRun]]):
    """One row per (eval set, model, instance): tool, every metric and the failure type."""
    import pandas as pd

    rows = []
    for set_name, run in runs:
        for r in run.rows:
            rows.append({"set": set_name, "model": r["model"], "tool": r["tool"], "id": r["id"],
                         **{m: bool(r["metrics"][m]) for m in METRICS}, "failure": r["metrics"]["failure"]})
    return pd.DataFrame(rows)


def paired_runs(runs: Sequence[tuple[str, EvalRun]], a: str = "base", b: str = "fine-tuned") -> dict[str, tuple]:
    """{"<set> · <decoding>: a → b": (a's rows, b's rows)} for every set and decoding that both
    models ran (run names as :func:`evaluate_grid` gives them): the pairs of
    :func:`toolalpaca_utils.stats.comparison_table`."""
    return _pairs(runs, lambda model, decoding: (f"{a} · {decoding}", f"{decoding}: {a} → {b}") if model == b else None)


def paired_decodings(runs: Sequence[tuple[str, EvalRun]], a: str, b: str) -> dict[str, tuple]:
    """{"<set> · <model>: a → b": (rows decoded a, rows decoded b)}: each model against itself under
    two decodings (e.g. constrained → grounded), for every set and model that ran both."""
    return _pairs(runs, lambda model, decoding: (f"{model} · {a}", f"{model}: {a} → {b}") if decoding == b else None)


def _pairs(runs: Sequence[tuple[str, EvalRun]], partner) -> dict[str, tuple]:
    """{"<set> · <label>": (partner's rows, run's rows)} where ``partner(model, decoding)`` names a
    run's partner (a run name, a label) or None, and the set holds that partner."""
    by_name = {(set_name, run.name): run for set_name, run in runs}
    pairs = {}
    for (set_name, name), run in by_name.items():
        model, _, decoding = name.partition(" · ")
        other, label = partner(model, decoding) or (None, "")
        if (set_name, other) in by_name:
            pairs[f"{set_name} · {label}"] = (by_name[(set_name, other)].rows, run.rows)
    return pairs


def render_row(row: dict) -> str:
    """An evaluated episode as readable markdown."""
    lines = [f"**{row['model']}** on **{row['tool']}** — {row['instruction']}", "",
             "golden: " + "; ".join(f"`{g['Action']} {g['Action_Input']}`" for g in row["golden"]), "", "```text"]
    for s in row["steps"]:
        lines += [s["text"], f"Observation: {s['observation'][:300]}"]
    if row.get("final"):
        lines.append(row["final"]["text"])
    lines += ["```", f"*{row['metrics']['failure']}* (stop: {row['stop_reason']})"]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m toolalpaca_utils.evaluation --profile NAME [--key value ...]
    from toolalpaca_utils.book.run import run_stage

    raise SystemExit(run_stage("04_evaluation"))
