"""STE distillation: explored trials become training examples.

Keep trials that end in a final answer after at least one 2xx call (the last such call is the
example's call); deterministic checks (request usable, arguments schema-valid and said by the
request, answer non-empty and grounded in the observation, no near-duplicate of another kept
request or of an evaluation instruction), an optional LLM judge; paraphrases of the kept requests (bounded per request and
per tool) reuse the call, observation and answer. Every dropped trial keeps its reason. Examples
are corpus instances (:mod:`toolalpaca_utils.corpus`), so the trainer consumes them as they are.
"""
from __future__ import annotations

import copy
import json
import math
import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from ..agents import ANSWER_THOUGHT, dedupe, missing_values, normalise, parse_numbered_list
from ..llm import LLMError
from ..openapi import function_schemas, record_spec, validate_arguments
from ..react import GET_DETAILS, format_action, format_final, parse_step
from .common import YES_NO, clip
from .exploration import clean_query, request_problems


@dataclass
class DistillConfig:
    """Parameters of :func:`distill`."""

    grounding_check: bool = True            # the answer shares a salient token/number with the observation
    answer_from_observation: bool = False   # an ungrounded answer is rewritten from the observation, not dropped
    match_imagined: bool = True             # call-first: the call is of the function the request was imagined for
    judge: bool = False                     # also ask an LLM judge (informative, faithful, appropriate)
    paraphrases_per_query: int = 2          # at most this many paraphrases per kept request
    max_examples_per_tool: int = 30         # kept requests + paraphrases, per tool
    paraphrase_temperature: float = 0.7
    paraphrase_tokens_each: int = 40
    dedupe_threshold: float = 0.85
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


_STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be been before being below between both but by can
could did do does doing down during each few for from further had has have having he her here hers him his how i
if in into is it its itself just me more most my no nor not now of off on once only or other our out over own same
she should so some such than that the their them then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours yes true false null none
please tell give show find get know want need like one two three day days time
""".split())
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.U)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:\.\d+)?")


def _number_forms(raw: str) -> set[str]:
    """A number and the forms an answer may write it in (no thousands separators, rounded)."""
    text = raw.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return {raw}
    forms = {raw, text}
    if math.isfinite(value):
        for d in (0, 1, 2):
            r = round(value, d)
            forms.add(f"{r:.{d}f}")
            if d == 0:
                forms.add(str(int(r)))
        if value == int(value):
            forms.add(str(int(value)))
    return forms


def salient_tokens(text: str, *, expand_numbers: bool = False) -> set[str]:
    """Content words (3+ letters, no stop words), lower-cased, and numbers."""
    text = str(text or "")
    words = {w.lower().strip("'’-") for w in _WORD.findall(text)}
    words = {w for w in words if len(w) >= 3 and w not in _STOPWORDS}
    nums: set[str] = set()
    for m in _NUMBER.findall(text):
        nums |= _number_forms(m) if expand_numbers else {m.replace(",", "")}
    return words | nums


_NO_JSON = object()


def _response_json(observation: str) -> tuple[str, Any]:
    """(the text after "Response:", its JSON value or ``_NO_JSON``)."""
    text = observation.split("Response:", 1)[1] if "Response:" in observation else observation
    try:
        return text, json.JSONDecoder().raw_decode(text.strip())[0]
    except (json.JSONDecodeError, ValueError):
        return text, _NO_JSON


def _json_leaves(value: Any, key: str = "", per_list: int | None = None) -> Iterator[tuple[str, Any]]:
    """(nearest key, leaf) pairs of a JSON value, in order; an empty list is a leaf;
    ``per_list`` caps the items read from each list."""
    if isinstance(value, dict):
        for k, x in value.items():
            yield from _json_leaves(x, str(k), per_list)
    elif isinstance(value, list) and value:
        for x in value[:per_list]:
            yield from _json_leaves(x, key, per_list)
    else:
        yield key, value


def observation_values(observation: str) -> str:
    """The values (not the keys) of the JSON response in an observation, as text; the raw
    observation when it holds no JSON. Booleans become yes/no words an answer would use."""
    text, value = _response_json(observation)
    if value is _NO_JSON:
        return text
    out = []
    for _, v in _json_leaves(value):
        if isinstance(v, bool):
            out.append("yes true" if v else "no not false")
        elif v is not None and v != []:
            out.append(str(v))
    return " ".join(out)


def observation_answer(observation: str, max_chars: int = 200) -> str:
    """A plain final answer made of what a call returned ("The service returned country name:
    Germany; total: 0; holidays: none."), for a trial whose own answer is not grounded."""
    text, value = _response_json(observation)
    if value is _NO_JSON:
        return clip("The service returned: " + " ".join(text.split()), max_chars)
    pairs = []
    for key, v in _json_leaves(value, per_list=3):
        if v is None:
            continue
        shown = "none" if v == [] else ("yes" if v is True else "no" if v is False else str(v))
        pairs.append(f"{key.replace('_', ' ')}: {shown}" if key else shown)
    return clip("The service returned " + ("; ".join(pairs) or "nothing") + ".", max_chars)


def grounding_tokens(answer: str, observation: str, query: str = "", args: Any = None) -> set[str]:
    """Salient tokens the answer shares with the observation's values and that it could not
    have copied from the request or the call's arguments."""
    obs = salient_tokens(observation_values(observation), expand_numbers=True)
    bools = {"yes", "no", "not", "true", "false"} & set(observation_values(observation).split())
    ans = salient_tokens(answer) | ({w for w in normalise(answer).split() if w in bools})
    echo = salient_tokens(query) | salient_tokens(json.dumps(args, ensure_ascii=False) if args is not None else "")
    return (ans & (obs | bools)) - (echo - bools)


def _last_ok_call(row: dict) -> dict | None:
    ok = [s for s in row.get("steps") or [] if s.get("action") not in (None, GET_DETAILS)
          and s.get("status") is not None and 200 <= s["status"] < 300]
    return ok[-1] if ok else None


def make_instance(row: dict, call: dict, *, instruction: str | None = None, example_id: str | None = None,
                  paraphrase_of: str | None = None) -> dict:
    """A corpus instance (see :mod:`toolalpaca_utils.corpus`) from a trial: its request (or a
    paraphrase), its last successful call with the real observation, and its final answer, as
    clean ReAct text."""
    args = json.loads(call["action_input"]) if call.get("action_input") else {}
    thought = (call.get("thought") or "").strip() or f"I need to call {call['action']} for this request."
    final_answer = row["final"]["answer"].strip()
    final_thought = parse_step(row["final"].get("text", "")).thought.strip() or "I now know the answer."
    text = format_action(thought, call["action"], args)
    step = {"text": text, "thought": thought, "action": call["action"],
            "action_input": json.dumps(args, ensure_ascii=False), "observation": call["observation"],
            "status": call["status"], "valid": True, "error": None}
    return {
        "id": example_id or f"ste-{row['id']}", "tool": row["tool"], "instruction": instruction or row["query"],
        "strategy": "ste", "mode": "explored", "steps": [step],
        "final": {"text": format_final(final_thought, final_answer), "answer": final_answer},
        "kept": True, "drop_reason": None, "split": "train",
        "golden": [{"Action": call["action"], "Action_Input": json.dumps(args, ensure_ascii=False)}],
        "tokens": row.get("tokens") or {}, "source_trial": row["id"], "paraphrase_of": paraphrase_of,
    }


def check_trial(row: dict, record: dict, *, match_imagined: bool = True) -> tuple[dict | None, str | None]:
    """(instance, None) for a trial that passes the deterministic checks, else (None, reason).
    ``match_imagined``: with call-first imagination, the call must be of the function the
    request was imagined for (otherwise the request and the call may not fit each other)."""
    if not row.get("query"):
        return None, "no usable request was imagined"
    problems = request_problems(row["query"], record)
    if problems:
        return None, "request: " + ", ".join(problems)
    if not row.get("final"):
        return None, "no final answer"
    call = _last_ok_call(row)
    if call is None:
        return None, "no successful (2xx) call"
    imagined = (row.get("imagined_call") or {}).get("action")
    if match_imagined and imagined and call["action"] != imagined:
        return None, "the call is not of the function the request was imagined for"
    schemas = function_schemas(record_spec(record))
    try:
        args = json.loads(call.get("action_input") or "{}")
    except json.JSONDecodeError:
        return None, "call arguments are not JSON"
    if call["action"] not in schemas or validate_arguments(schemas[call["action"]], args):
        return None, "call arguments break the schema"
    unsaid = missing_values(row["query"], args)
    if unsaid:  # an example must not teach a value the request never gave (30 of 45 in a cpu run did)
        return None, "call values the request does not say: " + ", ".join(unsaid)
    answer = (row["final"].get("answer") or "").strip()
    if not answer:
        return None, "empty final answer"
    return make_instance(row, call), None


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {k: {"enum": list(YES_NO)} for k in ("informative", "faithful", "appropriate")},
    "required": ["informative", "faithful", "appropriate"],
    "additionalProperties": False,
}


def judge_messages(instance: dict, record: dict) -> list[dict]:
    step = instance["steps"][0]
    return [
        {"role": "system", "content": "You check examples of an assistant using an API. Answer as JSON."},
        {"role": "user", "content": (
            f"API: {record['Name']}: {record.get('Description', '')}\nRequest: {instance['instruction']}\n"
            f"Call: {step['action']} {step['action_input']}\nResponse: {clip(step['observation'], 400)}\n"
            f"Answer given: {instance['final']['answer']}\n\n"
            "informative: does the answer give the person what they asked for? faithful: is everything in the "
            "answer supported by the response? appropriate: was this call a sensible way to handle the request? "
            "Answer each with Yes or No.")},
    ]


def paraphrase_messages(query: str, k: int) -> list[dict]:
    return [
        {"role": "system", "content": "You rewrite requests in other words without changing what they ask."},
        {"role": "user", "content": (
            f"Rewrite this request in {k} different ways. Keep every name, number and date exactly as written. "
            f"Write a numbered list, one rewrite per line.\nRequest: {query}")},
    ]


def _values_in_query(args: dict, query: str) -> list[str]:
    """The call's argument values that the request spells out: a paraphrase must keep them."""
    low = query.lower()
    vals = []
    for v in args.values():
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            s = str(v).strip().lower()
            if s and s in low:
                vals.append(s)
    return vals


def paraphrase_problems(paraphrase: str, seed_query: str, args: dict, record: dict) -> list[str]:
    problems = request_problems(paraphrase, record)
    missing = [v for v in _values_in_query(args, seed_query) if v not in paraphrase.lower()]
    if missing:
        problems.append("drops " + ", ".join(repr(m) for m in missing))
    if normalise(paraphrase) == normalise(seed_query):
        problems.append("same as the request")
    return problems


@dataclass
class DistillResult:
    examples: list[dict]               # corpus instances: kept trials, then paraphrases
    dropped: list[dict]                # {"id", "tool", "query", "reason"} per dropped trial or paraphrase
    counts: dict

    def drop_table(self):
        import pandas as pd

        frame = pd.DataFrame(self.dropped or [], columns=["id", "tool", "query", "reason", "kind"])
        return frame.groupby(["kind", "reason"]).size().rename("count").reset_index().sort_values(
            "count", ascending=False) if len(frame) else frame


@dataclass
class _Distillation:
    """What one :func:`distill` call shares between its steps: the inputs, the dropped rows with
    their reasons, the counts, and per tool the requests kept so far (trials, then paraphrases),
    against which later ones are deduplicated and the per-tool budget is counted."""

    cfg: DistillConfig
    by_name: dict[str, dict]
    client: Any
    eval_instructions: list[str]
    counts: dict
    dropped: list[dict] = field(default_factory=list)
    per_tool_queries: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, row_id, tool, query, reason, kind="trial"):
        self.dropped.append({"id": row_id, "tool": tool, "query": query, "reason": reason, "kind": kind})


def distill(rows: Sequence[dict], records: dict[str, dict] | Sequence[dict], *, client=None,
            cfg: DistillConfig | None = None, eval_instructions: Iterable[str] = ()) -> DistillResult:
    """Filter the explored trials into training examples and paraphrase-augment them.

    ``client`` writes paraphrases and (with ``cfg.judge``) judges; without it only the
    deterministic filter runs. ``eval_instructions``: requests too close to one of them are
    dropped, so no evaluation request leaks into the examples."""
    cfg = cfg or DistillConfig()
    run = _Distillation(cfg, records if isinstance(records, dict) else {r["Name"]: r for r in records}, client,
                        list(eval_instructions), {"trials": len(rows), "judged": 0, "judge_failures": 0})
    kept: list[dict] = []
    for row in rows:
        inst, reason = _filter_trial(run, row)
        if inst is None:
            run.drop(row["id"], row["tool"], row.get("query"), reason)
        else:
            kept.append(inst)
    run.counts["kept_trials"] = len(kept)

    paraphrased: list[dict] = []
    if client is not None and cfg.paraphrases_per_query > 0:
        # paraphrases share each tool's example budget with the requests kept for it
        n_tool = {t: len(q) for t, q in run.per_tool_queries.items()}
        for inst in kept:
            paraphrased += _paraphrase_examples(run, inst, n_tool)
    counts = run.counts
    counts["paraphrases"] = len(paraphrased)
    counts["examples"] = len(kept) + len(paraphrased)
    counts["dropped_trials"] = sum(1 for d in run.dropped if d["kind"] == "trial")
    return DistillResult(kept + paraphrased, run.dropped, counts)


def _filter_trial(run: _Distillation, row: dict) -> tuple[dict | None, str | None]:
    """(instance, None) for a trial that passes every check — its request then joins its tool's
    kept requests — else (None, the first reason to drop it). The checks run in a fixed order,
    cheapest first; the judge (an LLM call) comes last but for the budget."""
    cfg = run.cfg
    record = run.by_name.get(row["tool"])
    if record is None:
        return None, "tool not in the records"
    inst, reason = check_trial(row, record, match_imagined=cfg.match_imagined)
    if inst is None:
        return None, reason
    if cfg.grounding_check and not _answer_is_grounded(inst):
        if not cfg.answer_from_observation:
            return None, "answer not grounded in the observation"
        _answer_from_observation(inst)
        run.counts["answers_from_observation"] = run.counts.get("answers_from_observation", 0) + 1
    _, n_eval = dedupe([inst["instruction"]], cfg.dedupe_threshold, against=run.eval_instructions)
    if n_eval:
        return None, "near-duplicate of an evaluation request"
    seen = run.per_tool_queries.setdefault(row["tool"], [])
    _, n_dup = dedupe([inst["instruction"]], cfg.dedupe_threshold, against=seen)
    if n_dup:
        return None, "near-duplicate of a kept request"
    if cfg.judge and run.client is not None:
        reason = _judge(run, inst, record)
        if reason:
            return None, reason
    if len(seen) >= cfg.max_examples_per_tool:
        return None, "per-tool example budget reached"
    seen.append(inst["instruction"])
    return inst, None


def _answer_is_grounded(inst: dict) -> bool:
    step = inst["steps"][0]
    return bool(grounding_tokens(inst["final"]["answer"], step["observation"], inst["instruction"],
                                 json.loads(step["action_input"])))


def _answer_from_observation(inst: dict) -> None:
    """Replace the instance's answer by one written from the call's response, keeping the
    replaced answer and marking the source."""
    # a weak explorer makes the right call and then writes an answer unrelated to the response;
    # the call is worth learning, so the answer is written from the response
    answer = observation_answer(inst["steps"][0]["observation"])
    inst["final"] = {"text": format_final(ANSWER_THOUGHT, answer), "answer": answer,
                     "replaced": inst["final"]["answer"]}
    inst["answer_source"] = "observation"


def _judge(run: _Distillation, inst: dict, record: dict) -> str | None:
    """The LLM judge's reason to drop the instance, or None (also when the judge fails: its
    error is kept on the instance and counted, the instance is not punished for it)."""
    run.counts["judged"] += 1
    try:
        verdict = run.client.chat(judge_messages(inst, record), schema=JUDGE_SCHEMA, temperature=0.0,
                                  max_tokens=40, seed=run.cfg.seed).parsed
        inst["judge"] = verdict
        no = [k for k, v in verdict.items() if v != "Yes"]
        if no:
            return "judge: not " + ", ".join(no)
    except LLMError as exc:
        run.counts["judge_failures"] += 1
        inst["judge"] = {"error": str(exc)[:200]}
    return None


def _paraphrase_examples(run: _Distillation, inst: dict, n_tool: dict[str, int]) -> list[dict]:
    """Up to ``paraphrases_per_query`` paraphrases of a kept instance, within its tool's budget
    (``n_tool`` counts the tool's examples so far and is updated); rejected candidates are dropped
    with their reasons."""
    tool = inst["tool"]
    room = min(run.cfg.paraphrases_per_query, run.cfg.max_examples_per_tool - n_tool[tool])
    if room <= 0:
        return []
    candidates = _paraphrase_candidates(run, inst)
    if candidates is None:
        return []
    if not candidates:  # a weak model often writes no list at all: counted, never silently skipped
        run.drop(inst["id"], tool, inst["instruction"], "paraphrase: the reply holds no numbered rewrite",
                 "paraphrase")
        return []
    args = json.loads(inst["steps"][0]["action_input"])
    made: list[dict] = []
    for j, p in enumerate(candidates):
        if len(made) >= room:
            break
        p = clean_query(p)
        problems = _paraphrase_rejections(run, p, inst, args)
        if problems:
            run.drop(f"{inst['id']}-p{j}", tool, p, "paraphrase: " + ", ".join(problems), "paraphrase")
            continue
        made.append(_paraphrase_instance(inst, p, len(made)))
        run.per_tool_queries[tool].append(p)
        n_tool[tool] += 1
    return made


def _paraphrase_candidates(run: _Distillation, inst: dict) -> list[str] | None:
    """The paraphrases the model writes for the instance's request (None, and dropped, when the
    call fails). The seed depends on the instance only, so each request's paraphrases are stable."""
    k = run.cfg.paraphrases_per_query
    seed = run.cfg.seed + zlib.crc32(inst["id"].encode()) % 100_000
    try:
        res = run.client.chat(paraphrase_messages(inst["instruction"], k), temperature=run.cfg.paraphrase_temperature,
                              max_tokens=run.cfg.paraphrase_tokens_each * k + 10, seed=seed)
        return parse_numbered_list(res.text, 240)
    except LLMError as exc:
        run.drop(inst["id"], inst["tool"], inst["instruction"], f"paraphrase failed ({type(exc).__name__})",
                 "paraphrase")
        return None


def _paraphrase_rejections(run: _Distillation, paraphrase: str, inst: dict, args: dict) -> list[str]:
    """Why a paraphrase is not kept: :func:`paraphrase_problems`, else closeness to an evaluation
    request or to a request the tool already has."""
    tool = inst["tool"]
    problems = paraphrase_problems(paraphrase, inst["instruction"], args, run.by_name[tool])
    if not problems:
        _, n_eval = dedupe([paraphrase], run.cfg.dedupe_threshold, against=run.eval_instructions)
        _, n_dup = dedupe([paraphrase], 0.95, against=run.per_tool_queries[tool])
        problems = (["near-duplicate of an evaluation request"] if n_eval else []) + \
                   (["duplicate"] if n_dup else [])
    return problems


def _paraphrase_instance(inst: dict, paraphrase: str, index: int) -> dict:
    """The instance again under the paraphrased request: same call, observation and answer."""
    seed_row = {"id": inst["source_trial"], "tool": inst["tool"], "final": inst["final"], "tokens": {}}
    para = make_instance(seed_row, inst["steps"][0], instruction=paraphrase, example_id=f"{inst['id']}-p{index}",
                         paraphrase_of=inst["id"])
    para["final"] = copy.deepcopy(inst["final"])
    return para
