"""Stage 2: simulate tool-use instances with the user, assistant and executor agents.

For every tool the user agent writes instructions (``instruction-first``: k requests in one
call; ``call-first``: sample a schema-valid call, then write a request that needs it), the
assistant agent solves each in ReAct (``free`` text or ``constrained`` JSON steps), and the
executor answers each call (an LLM simulating the spec, or a real HTTP call for real tools).
Every instance is appended to ``train/eval/rejects.jsonl`` as soon as it is finished, with the
reason it was kept or dropped, so a killed run resumes without redoing or duplicating work. A
teacher endpoint that fails (down, restarting, 5xx) rejects nothing: the tool is retried with
back-off and, after a few tools in a row, the run stops (:mod:`toolalpaca_utils.endpoint`).
Evaluation tools (a seeded, tool-level split) never reach the training split.
"""
from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .agents import (
    ANSWER_THOUGHT, SimulatedExecutor, Trajectory, dedupe, executor_for, instruction_problems, missing_values, normalise,
    run_assistant,
    sample_call, template_instruction, typed_call, write_instruction_for_call, write_instructions,
)
from .agents.requests import bank_request
from .agents.responses import SchemaExecutor, answer_problems, verbalise
from .corpus import SPLITS, load_split, load_tools, save_tools, to_dataset_dict
from .endpoint import EndpointPolicy, guard_endpoint
from .llm import LLMError
from .parallel import run_parallel, worker_count
from .react import GET_DETAILS, format_final
from .toolset.blueprints import draw_request
from .values import Value
from .runs import append_jsonl, read_jsonl, resume_or_reset, write_jsonl

STRATEGIES = ("instruction-first", "call-first")
MODES = ("free", "constrained")
VALUES, FALLBACKS, EXECUTORS, ANSWERS = ("typed", "teacher"), ("bank", "template", ""), ("schema", "llm"), \
    ("grounded", "teacher")


@dataclass
class SimulationConfig:
    instructions_per_tool: int = 4
    instructions_per_blueprint_tool: int = 0  # 0: instructions_per_tool; code-written tools have 3-4 functions,
                                              # and choosing among them is what their instances teach
    strategy: str = "call-first"
    mode: str = "constrained"
    max_steps: int = 3                 # assistant turns per instance (the reference allows ~15)
    max_kept_steps: int = 5            # longer trajectories are dropped, as in the reference
    n_eval_tools: int = 2
    eval_tools: list[str] = field(default_factory=list)  # []: n_eval_tools drawn with the seed; names: exactly
                                       # these held out, so a lever that adds tools keeps its test set
    allow_error_steps: bool = False    # keep trajectories that recovered from a step of their own that was
                                       # unusable (unparseable, unknown function, schema-invalid); a valid call
                                       # that the service answered with an error is kept, as the reference does
    answer_after_success: bool | None = None  # None: True (a weak assistant rarely ends on its own); False
                                              # lets instruction-first chain calls before answering
    # The levers of a weak teacher (call-first; the gpu profile's strong teacher writes everything):
    values: str = "typed"              # typed (code: enums, real data lists, Faker) | teacher (under the schema)
    teacher_requests: bool = False     # the teacher writes the request from the values first (checked); the
                                       # 135M teacher's said every value in 0 of 24 (cpu toolset, measured)
    request_fallback: str = "bank"     # when it loses a value: bank (many frames) | template (one frame) | "" (reject)
    executor: str = "schema"           # schema (code fills the response schema) | llm (the teacher plays the API)
    answers: str = "grounded"          # grounded (the teacher's, if it quotes the response; else code says it)
                                       # | teacher (unchecked)
    scaffold: bool = True              # free mode: worked calls in the teacher's prompt, answer from a short chat
                                       # (see agents.Episode); the stored trajectories are unchanged
    dedupe_threshold: float = 0.85
    step_tokens: int = 120
    seed: int = 0

    def episode_options(self) -> dict:
        """The assistant-loop options (:class:`~toolalpaca_utils.agents.Episode`) this config sets."""
        return {"mode": self.mode, "max_steps": self.max_steps, "step_tokens": self.step_tokens,
                "answer_after_success": self.answer_after_success is not False, "scaffold": self.scaffold}

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for key, allowed in (("values", VALUES), ("request_fallback", FALLBACKS), ("executor", EXECUTORS),
                             ("answers", ANSWERS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.eval_tools and self.n_eval_tools not in (0, len(set(self.eval_tools))):
            raise ValueError(f"n_eval_tools={self.n_eval_tools} but {len(set(self.eval_tools))} eval_tools are "
                             "named: set n_eval_tools to 0 or to their number")
        if self.instructions_per_tool < 1 or self.max_steps < 1 or self.instructions_per_blueprint_tool < 0:
            raise ValueError("instructions_per_tool and max_steps must be ≥ 1, instructions_per_blueprint_tool ≥ 0")

    def instructions_for(self, record: dict) -> int:
        """How many instances the tool gets (a code-written tool may get more)."""
        return (self.instructions_per_blueprint_tool or self.instructions_per_tool) if record.get("blueprint") \
            else self.instructions_per_tool


def split_tools(names: Sequence[str], n_eval: int, seed: int,
                pinned: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Tool-level split: (training tools, evaluation tools). The evaluation tools are ``pinned``
    by name, or else a sample of ``n_eval`` drawn with ``seed`` (which other tools change)."""
    names = sorted(set(names))
    if pinned:
        missing = sorted(set(pinned) - set(names))
        if missing:
            raise ValueError(f"eval_tools not in the toolset: {', '.join(missing)}")
        eval_names = sorted(set(pinned))
    else:
        eval_names = sorted(random.Random(seed).sample(names, n_eval)) if n_eval > 0 else []
    if len(eval_names) >= len(names) and names:
        raise ValueError(f"{len(eval_names)} evaluation tools leave no training tool out of {len(names)}")
    return [n for n in names if n not in eval_names], eval_names


def rejection_reason(traj: Trajectory, cfg: SimulationConfig) -> str | None:
    """Why a trajectory is dropped, or None when it is kept (the reference's filters, plus ours)."""
    if traj.stop_reason.startswith("llm error"):
        return traj.stop_reason
    if not traj.steps and traj.final is None:
        return "no steps"
    if traj.final is None:
        if all(not s.valid and s.status is None for s in traj.steps):
            return "unparseable"
        return "no final answer" if traj.stop_reason == "max steps" else traj.stop_reason
    if not traj.steps:
        return "no steps (answered without calling the tool)"
    if len(traj.steps) > cfg.max_kept_steps:
        return f"more than {cfg.max_kept_steps} steps"
    if all(s.action == GET_DETAILS for s in traj.steps):
        return "only getDetails"
    if not traj.successful_calls():
        return "executor errors only"
    if not cfg.allow_error_steps and any(not s.valid for s in traj.steps):
        return "contains an invalid call"
    final_text = traj.final["text"].split("Final Answer:", 1)
    if any(marker in final_text[0] for marker in ("Action:", "Observation:")) or "Observation:" in traj.final["answer"]:
        return "final answer echoes the ReAct format"
    return None


def golden_from(traj: Trajectory) -> list[dict]:
    """The golden answer shape of the ToolAlpaca eval files: the successful calls, in order."""
    return [{"Action": s.action, "Action_Input": s.action_input} for s in traj.successful_calls()]


def _tokens(client) -> int:
    """Completion tokens this worker thread has used so far (other workers run at the same time)."""
    if hasattr(client, "thread_tokens"):
        return client.thread_tokens()
    stats = getattr(client, "stats", None)
    return (stats.completion_tokens + stats.replayed_tokens) if stats else 0


def _instance(tool: str, iid: str, instruction: str, cfg: SimulationConfig, traj: Trajectory | None,
              reason: str | None, split: str, tokens: int, seconds: float, extra: dict | None = None) -> dict:
    return {
        "id": iid, "tool": tool, "instruction": instruction, "strategy": cfg.strategy, "mode": cfg.mode,
        "steps": [s.as_dict() for s in traj.steps] if traj else [],
        "final": traj.final if traj else None,
        "kept": reason is None, "drop_reason": reason,
        "split": split if reason is None else "rejects",
        "golden": golden_from(traj) if traj else [],
        "stop_reason": traj.stop_reason if traj else "",
        "tokens": {"completion": tokens, "assistant_completion": traj.completion_tokens if traj else 0},
        "seconds": round(seconds, 3),
        **(extra or {}),
    }


def simulate_tool(client, record: dict, cfg: SimulationConfig, *, split: str, done: set[str],
                  executor=None, seen: set[str] | None = None) -> Iterator[dict]:
    """All instances of one tool, kept or dropped; ids in ``done`` are skipped, and a call-first
    request whose normalised text is in ``seen`` is drawn again (``seen`` grows). With a guarded
    client (:func:`~toolalpaca_utils.endpoint.guard_endpoint`) an endpoint failure ends the tool
    with :class:`~toolalpaca_utils.endpoint.EndpointFailure` instead of a reject."""
    tool = record["Name"]
    seen = set() if seen is None else seen
    executor = executor or _executor(client, record, cfg)
    seed = cfg.seed + (sum(map(ord, tool)) % 10_000) * 100
    ids = [f"{tool}:{cfg.strategy}:{cfg.mode}:{j}" for j in range(cfg.instructions_for(record))]
    if all(i in done for i in ids):
        return
    strategy = _instruction_first if cfg.strategy == "instruction-first" else _call_first
    yield from strategy(client, record, cfg, ids=ids, split=split, done=done, executor=executor, seed=seed, seen=seen)


def _response_source(record: dict, cfg: SimulationConfig) -> str:
    return "real" if record.get("source") == "real" else cfg.executor


def _instruction_first(client, record: dict, cfg: SimulationConfig, *, ids: list[str], split: str, done: set[str],
                       executor, seed: int, seen: set[str]) -> Iterator[dict]:
    """The paper's strategy: the user agent writes k requests in one call; each is solved."""
    tool, k = record["Name"], cfg.instructions_for(record)
    start, t0 = _tokens(client), time.perf_counter()
    try:
        texts = write_instructions(client, record, k, seed=seed)
    except LLMError as exc:
        for iid in ids:
            if iid not in done:
                yield _instance(tool, iid, "", cfg, None, f"user agent failed: {exc}", split, 0, 0.0)
        return
    share = (_tokens(client) - start) // max(1, k)  # instruction tokens, split over the k instances
    kept, _ = dedupe(texts, cfg.dedupe_threshold)
    kept = [t for t in kept if normalise(t) not in seen]  # another tool's request, word for word
    for iid in ids[len(texts):]:  # the user agent wrote fewer requests than asked: say so, never drop
        if iid not in done:
            yield _instance(tool, iid, "", cfg, None, f"user agent wrote {len(texts)} of {k} instructions",
                            split, 0, 0.0)
    for iid, text in zip(ids, texts):
        if iid in done:
            continue
        problems = instruction_problems(text, record) + ([] if text in kept else ["near-duplicate instruction"])
        if problems:
            yield _instance(tool, iid, text, cfg, None, "instruction " + ", ".join(problems), split, share, 0.0)
            continue
        kept.remove(text)
        seen.add(normalise(text))
        t1, before = time.perf_counter(), _tokens(client)
        traj = run_assistant(client, record, text, executor, seed=seed + 17, **cfg.episode_options())
        extra = {"request_source": "teacher", "response_source": _response_source(record, cfg),
                 **_ground_answer(traj, cfg, random.Random(iid))}
        yield _instance(tool, iid, text, cfg, traj, rejection_reason(traj, cfg), split,
                        share + _tokens(client) - before, time.perf_counter() - t1 + (t1 - t0) / k, extra)


def _call_first(client, record: dict, cfg: SimulationConfig, *, ids: list[str], split: str, done: set[str],
                executor, seed: int, seen: set[str]) -> Iterator[dict]:
    """Call-first: the call (by code or teacher), then its request, then the episode from it."""
    tool, rng = record["Name"], random.Random(seed)
    for j, iid in enumerate(ids):
        call_rng = random.Random(rng.random())  # one draw per slot: resuming skips slots, not draws
        if iid in done:
            continue
        t1, before = time.perf_counter(), _tokens(client)
        try:
            name, values, text, extra = _fresh_request(client, record, cfg, call_rng, seed + j, seen)
        except (LLMError, ValueError) as exc:
            yield _instance(tool, iid, "", cfg, None, f"user agent failed: {exc}", split,
                            _tokens(client) - before, time.perf_counter() - t1)
            continue
        if extra.get("problems"):
            yield _instance(tool, iid, text, cfg, None, "instruction " + ", ".join(extra.pop("problems")), split,
                            _tokens(client) - before, time.perf_counter() - t1, extra)
            continue
        extra.pop("problems", None)
        args = {k: v.value for k, v in values.items()}
        traj = run_assistant(client, record, text, executor, seed=seed + j, forced_first=(name, args),
                             **cfg.episode_options())
        extra.update(_ground_answer(traj, cfg, call_rng))
        yield _instance(tool, iid, text, cfg, traj, rejection_reason(traj, cfg), split, _tokens(client) - before,
                        time.perf_counter() - t1, extra)


def _fresh_request(client, record: dict, cfg: SimulationConfig, rng: random.Random, seed: int,
                   seen: set[str]) -> tuple[str, dict, str, dict]:
    """(function, values, request, provenance) whose request is in no split yet: a request seen
    before is drawn again, twice at most, then recorded as a duplicate."""
    for attempt in range(3):
        if cfg.values == "typed" and record.get("blueprint"):
            name, values, text, extra = _blueprint_request(record, rng)
        else:
            name, values = _call_values(client, record, cfg, rng, seed + 1000 * attempt)
            text, extra = _request_for(client, record, cfg, name, values, rng, seed + 1000 * attempt)
        if normalise(text) not in seen:
            break
    else:
        extra["problems"] = ["duplicates an earlier request"]
    seen.add(normalise(text))
    extra["response_source"] = _response_source(record, cfg)
    return name, values, text, extra


def _executor(client, record: dict, cfg: SimulationConfig):
    """Real tools answer for real; the others as ``cfg.executor`` says."""
    return executor_for(record, SchemaExecutor() if cfg.executor == "schema" else SimulatedExecutor(client))


def _call_values(client, record: dict, cfg: SimulationConfig, rng: random.Random, seed: int) -> tuple[str, dict]:
    """The function and its values (:class:`~toolalpaca_utils.values.Value`), by code or teacher."""
    if cfg.values == "typed":
        return typed_call(record, rng)
    name, args = sample_call(client, record, rng, seed=seed)
    return name, {k: Value(v, str(v), "teacher") for k, v in args.items()}


def _blueprint_request(record: dict, rng: random.Random) -> tuple[str, dict, str, dict]:
    """A code-written tool's call and request, from one of its functions' request templates
    (:func:`toolalpaca_utils.toolset.blueprints.draw_request`), with its provenance."""
    name, values, text, frame = draw_request(record, rng)
    args = {k: v.value for k, v in values.items()}
    problems = _request_problems(text, record, args)
    return name, values, text, {"sampled_call": [name, args], "value_kinds": {k: v.kind for k, v in values.items()},
                                "values_source": "typed", "request_source": "blueprint", "request_frame": frame,
                                "problems": problems}


def _request_for(client, record: dict, cfg: SimulationConfig, name: str, values: dict, rng: random.Random,
                 seed: int) -> tuple[str, dict]:
    """The request for a call, and its provenance: the teacher's when it says every value and
    names no API or function, else the fallback's (``extra["problems"]``: why none is usable)."""
    args = {k: v.value for k, v in values.items()}
    extra: dict = {"sampled_call": [name, args], "value_kinds": {k: v.kind for k, v in values.items()},
                   "values_source": cfg.values}
    text, problems = "", ["not written"]
    if cfg.teacher_requests:
        text = write_instruction_for_call(client, record, name, values, seed=seed)
        problems = instruction_problems(text, record, args)
        missing = missing_values(text, args)
        if missing:
            problems.append("misses the values of " + ", ".join(missing))
        extra["request_source"] = "teacher"
    if problems and cfg.request_fallback:
        if text:
            extra["rejected_instruction"] = text
        if cfg.request_fallback == "bank":
            text, extra["request_frame"] = bank_request(record, name, values, rng)
        else:
            text, extra["request_frame"] = template_instruction(record, name, args), "template"
        extra["request_source"] = cfg.request_fallback
        problems = _request_problems(text, record, args)
    return text, {**extra, "problems": problems}


def _request_problems(text: str, record: dict, args: dict) -> list[str]:
    """Why a request written by code is unusable: what any request is checked for, and each
    value of the call it does not say."""
    return instruction_problems(text, record, args) + [f"misses the value of {k}" for k in missing_values(text, args)]


def _ground_answer(traj: Trajectory, cfg: SimulationConfig, rng: random.Random) -> dict:
    """With ``answers="grounded"``, a final answer that quotes no value of the last successful
    response (or a status line, or JSON) is replaced by :func:`verbalise`'s; so is a missing one
    after a successful call. Every answer after a response is stored after ANSWER_THOUGHT (the
    teacher's own thought is dropped). Returns the provenance fields of the instance."""
    calls = traj.successful_calls()
    answer = (traj.final or {}).get("answer", "")
    if traj.final and calls:  # an answer from a response: after the corpus's one thought
        traj.final = {**traj.final, "text": format_final(ANSWER_THOUGHT, answer)}
    if cfg.answers != "grounded" or not calls or traj.stop_reason.startswith("llm error"):
        return {"answer_source": "teacher"} if traj.final else {}
    observation = calls[-1].observation
    problems = answer_problems(answer, observation) if traj.final else ["none written"]
    if not problems:
        return {"answer_source": "teacher"}
    spoken = verbalise(observation, rng)
    traj.final = {"text": format_final(ANSWER_THOUGHT, spoken), "answer": spoken}
    traj.stop_reason = "final answer"
    return {"answer_source": "verbaliser", "rejected_answer": answer, "answer_problems": problems}


@dataclass
class SimulationResult:
    out_dir: Path
    counts: dict = field(default_factory=dict)
    drop_reasons: dict = field(default_factory=dict)
    seconds: float = 0.0
    generated_tokens: int = 0
    train_tools: list = field(default_factory=list)
    eval_tools: list = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.counts.get("train", 0) + self.counts.get("eval", 0)

    def yield_per_1k_tokens(self) -> float:
        return 1000 * self.accepted / self.generated_tokens if self.generated_tokens else 0.0

    def yield_per_minute(self) -> float:
        return 60 * self.accepted / self.seconds if self.seconds else 0.0


def simulate(client, records: Sequence[dict], cfg: SimulationConfig, *, out_dir: str | Path,
             progress: bool = True, executors: dict | None = None, workers: int | None = None,
             endpoint: EndpointPolicy | None = None) -> SimulationResult:
    """Run the simulation for ``records`` into ``out_dir`` (resuming what is already there).

    ``workers`` tools are simulated at once (default: ``client.parallelism``, one per server
    replica); every instance is appended as soon as it is finished, and at the end each split is
    rewritten in tool order, so the files do not depend on which worker finished first.

    A tool whose teacher endpoint failed is retried as ``endpoint`` says (default
    :class:`~toolalpaca_utils.endpoint.EndpointPolicy`) and its unfinished instances are not
    recorded; after a few such tools in a row the run stops with
    :class:`~toolalpaca_utils.endpoint.EndpointUnreachableError`, and a rerun does exactly them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not records:
        raise ValueError("no tools to simulate: the toolset is empty")
    made_from = _saved_tools(out_dir)
    save_tools(out_dir, list(records))
    # a field added to the config since that run was written counts as its default
    # the split only files instances (_reconcile re-files them), so another split resumes
    resume_or_reset(out_dir, asdict(cfg), marker="config.json", clear=(), defaults=asdict(SimulationConfig()),
                    refuse=f"{out_dir} holds a run with another configuration; use a new out_dir or delete it",
                    ignore=("n_eval_tools", "eval_tools"))
    train_names, eval_names = split_tools([r["Name"] for r in records], cfg.n_eval_tools, cfg.seed, cfg.eval_tools)
    finished = _reconcile(out_dir, records, made_from, eval_names)
    done = {row["id"] for row in finished}
    seen = {normalise(row["instruction"]) for row in finished if row["instruction"]}
    start = time.perf_counter()
    kept = 0
    policy = (endpoint or EndpointPolicy()).for_stage(
        client, kept=str(out_dir), resume="run simulate again with the same out_dir and configuration (the "
                                          "02_simulation notebook, or `python -m toolalpaca_utils.simulation`)")
    guarded = guard_endpoint(client)

    def run_tool(record: dict) -> Iterator[dict]:
        split = "eval" if record["Name"] in eval_names else "train"
        executor = (executors or {}).get(record["Name"])
        return simulate_tool(guarded, record, cfg, split=split, done=done, executor=executor, seen=seen)

    def keep(inst: dict) -> None:
        nonlocal kept
        append_jsonl(out_dir / f"{inst['split']}.jsonl", [inst])
        done.add(inst["id"])
        kept += inst["kept"]

    run_parallel(records, run_tool, keep, workers=worker_count(client, workers),
                 total=sum(map(cfg.instructions_for, records)), initial=len(done), desc="instances",
                 progress=progress, postfix=lambda: {"kept": kept}, endpoint=policy,
                 label=lambda record: record["Name"])
    _canonical_order(out_dir, [r["Name"] for r in records])
    to_dataset_dict(out_dir)
    return summarise(out_dir, seconds=time.perf_counter() - start, train_tools=train_names, eval_tools=eval_names)


def _saved_tools(out_dir: Path) -> dict[str, dict]:
    """The tool records a run in ``out_dir`` made its instances from (none for a new run)."""
    try:
        return load_tools(out_dir)
    except (OSError, ValueError):
        return {}


def _reconcile(out_dir: Path, records: Sequence[dict], made_from: dict[str, dict],
               eval_names: Sequence[str]) -> list[dict]:
    """Fit a resumed run's instances to this run's toolset and split, say what changed, and return
    the instances kept (every split). Dropped, to be made again: those of a tool whose record
    differs from the one they were made from (a toolset rebuilt with other documentation: their
    calls and thoughts quote documentation that is gone) and those of a tool no longer in the
    toolset. Moved: each kept instance to its tool's split of this run. Why: the split is a seeded
    sample of the tool names (unless ``eval_tools`` pins it), so a toolset with more tools holds out
    others, as does another ``n_eval_tools``; kept where they were, the instances of a tool now held
    out would be trained on."""
    current = {r["Name"]: json.loads(json.dumps(r, ensure_ascii=False)) for r in records}
    changed = sorted(n for n in current if n in made_from and made_from[n] != current[n])
    rows = {split: read_jsonl(out_dir / f"{split}.jsonl") for split in SPLITS}
    gone = sorted({r["tool"] for split in SPLITS for r in rows[split] if r["tool"] not in current})
    split_of = {n: "eval" if n in eval_names else "train" for n in current if n not in changed}
    moved = sorted({r["tool"] for split in ("train", "eval") for r in rows[split]
                    if r["tool"] in split_of and split_of[r["tool"]] != split})
    if changed:
        print(f"{len(changed)} tools changed since their instances were made; simulated again: {', '.join(changed)}")
    if moved or gone:
        print(f"the toolset or split changed since these instances were made: those of {len(moved)} tools moved to "
              f"the tool's new split ({', '.join(moved)}), those of {len(gone)} tools no longer in it dropped "
              f"({', '.join(gone)})")
    if not (changed or moved or gone):
        return [r for split in SPLITS for r in rows[split]]
    kept = {"rejects": [r for r in rows["rejects"] if r["tool"] in split_of]}
    for split in ("train", "eval"):
        kept[split] = [{**r, "split": split} for was in ("train", "eval") for r in rows[was]
                       if split_of.get(r["tool"]) == split]
    for split in SPLITS:
        write_jsonl(out_dir / f"{split}.jsonl", kept[split])
    return [r for split in SPLITS for r in kept[split]]


def _canonical_order(out_dir: Path, tool_names: Sequence[str]) -> None:
    """Rewrite each split in tool order, then instance number (ids end with ``:<j>``)."""
    rank = {name: i for i, name in enumerate(tool_names)}

    def key(row: dict) -> tuple:
        tail = row["id"].rsplit(":", 1)[-1]
        return (rank.get(row["tool"], len(rank)), row["tool"], int(tail) if tail.isdigit() else 0, row["id"])

    for split in SPLITS:
        path = out_dir / f"{split}.jsonl"
        rows = read_jsonl(path)
        ordered = sorted(rows, key=key)
        if ordered != rows:
            write_jsonl(path, ordered)


def summarise(out_dir: str | Path, *, seconds: float | None = None, train_tools=(), eval_tools=()) -> SimulationResult:
    """Counts, drop reasons and token totals of a corpus directory (all instances, whole run)."""
    out_dir = Path(out_dir)
    rows = {s: load_split(out_dir, s) for s in SPLITS}
    everything = [r for s in SPLITS for r in rows[s]]
    reasons = Counter(_reason_group(r["drop_reason"]) for r in rows["rejects"])
    return SimulationResult(
        out_dir=out_dir,
        counts={s: len(rows[s]) for s in SPLITS},
        drop_reasons=dict(reasons.most_common()),
        seconds=seconds if seconds is not None else sum(r.get("seconds", 0) for r in everything),
        generated_tokens=sum(r["tokens"]["completion"] for r in everything),
        train_tools=list(train_tools), eval_tools=list(eval_tools),
    )


def _reason_group(reason: str | None) -> str:
    """Drop reasons without their instance-specific detail, for counting."""
    if not reason:
        return "kept"
    for prefix in ("llm error", "user agent failed", "user agent wrote", "instruction misses", "instruction"):
        if reason.startswith(prefix):
            return prefix if prefix != "instruction" else reason.split(",")[0]
    return reason


def corpus_frame(out_dir: str | Path):
    """One row per instance (all splits): tool, split, kept, drop reason, steps, calls, tokens."""
    import pandas as pd

    rows = []
    for split in SPLITS:
        for r in load_split(out_dir, split):
            rows.append({
                "id": r["id"], "tool": r["tool"], "split": split, "kept": r["kept"],
                "drop_reason": _reason_group(r["drop_reason"]), "strategy": r["strategy"], "mode": r["mode"],
                "n_steps": len(r["steps"]), "n_calls": len(r["golden"]),
                "functions": sorted({s["action"] for s in r["steps"] if s.get("action")}),
                "request_source": r.get("request_source", ""), "answer_source": r.get("answer_source", ""),
                "tokens": r["tokens"]["completion"], "seconds": r.get("seconds", 0.0),
            })
    return pd.DataFrame(rows)


def plot_corpus(frame):
    """Drop reasons, steps per accepted instance and distinct functions per tool, side by side
    (``frame``: :func:`corpus_frame`). An empty panel (e.g. nothing was dropped) says "none"."""
    import matplotlib.pyplot as plt

    kept = frame[frame.kept]
    panels = [("drop reasons", frame[~frame.kept].drop_reason.value_counts().sort_values(), "barh"),
              ("steps per accepted instance", kept.n_steps.value_counts().sort_index(), "bar"),
              ("distinct functions used per tool",
               kept.groupby("tool").functions.apply(lambda f: len(set(sum(f, [])))).value_counts().sort_index(), "bar")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, counts, kind) in zip(axes, panels):
        if len(counts):
            getattr(counts.plot, kind)(ax=ax, title=title)
        else:
            ax.set_title(title)
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def render_trajectory(inst: dict) -> str:
    """An instance as readable markdown."""
    lines = [f"**{inst['tool']}** — {inst['instruction']}", ""]
    for s in inst["steps"]:
        lines += ["```text", s["text"], f"Observation: {s['observation']}", "```"]
    if inst.get("final"):
        lines += ["```text", inst["final"]["text"], "```"]
    lines.append(f"*{'kept' if inst['kept'] else 'dropped: ' + str(inst['drop_reason'])}*")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m toolalpaca_utils.simulation --profile NAME [--key value ...]
    from toolalpaca_utils.book.run import run_stage

    raise SystemExit(run_stage("02_simulation"))
