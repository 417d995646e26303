"""One ReAct episode per BFCL question, with the project's :class:`~toolalpaca_utils.agents.Episode`,
as resumable result rows (one JSONL file per model and decoding).

There is no service behind a BFCL function, so every call that passes the argument check gets the
same neutral observation; the student may call again (that is how it makes parallel calls) until
its final answer. No question is ever excluded: an episode that failed is a row with no calls,
which BFCL's checker counts as wrong (and, for irrelevance, as right: nothing was called).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..agents import Episode, drive
from ..agents.executor import Observation
from ..endpoint import EndpointPolicy, guard_endpoint
from ..runs import append_jsonl, read_jsonl
from .data import Question
from .decode import decoded
from .records import record_from_functions

RECORDED = 'Status Code: 200. Response: {"status": "recorded"}'


def recorded_executor(record: dict, action: str, args: dict, *, seed: int = 0) -> Observation:
    """Every valid call is recorded, never executed: the same neutral observation for all."""
    return Observation(200, RECORDED)


def run_question(model, question: Question, *, name: str, mode: str, max_steps: int, step_tokens: int) -> dict:
    """One question's episode to its end, as a result row with its decoded calls."""
    record = record_from_functions(question.functions)
    episode = Episode(record, question.instruction, recorded_executor, mode=mode, max_steps=max_steps,
                      step_tokens=step_tokens, seed=0)
    traj = drive(model, episode)
    steps = [s.as_dict() for s in traj.steps]
    return {"id": question.id, "category": question.category, "model": name, "mode": mode,
            "decoded": decoded(question.category, steps), "steps": steps, "final": traj.final,
            "stop_reason": traj.stop_reason}


def run_model(model, questions: Sequence[Question], *, name: str, mode: str, out_path: str | Path | None = None,
              max_steps: int = 5, step_tokens: int = 160, progress: bool = True,
              endpoint: EndpointPolicy | None = None) -> list[dict]:
    """Rows for every question, in order; each row is appended to ``out_path`` as its episode
    ends, and a rerun with the same file resumes. Episodes whose endpoint failed are retried and
    left unrecorded if it stays down (as in :func:`~toolalpaca_utils.evaluation.evaluate`)."""
    from ..parallel import run_parallel, worker_count

    done = {r["id"]: r for r in read_jsonl(out_path)} if out_path else {}
    guarded = guard_endpoint(model)
    todo = [q for q in questions if q.id not in done]

    def work(question: Question):
        yield run_question(guarded, question, name=name, mode=mode, max_steps=max_steps, step_tokens=step_tokens)

    def keep(row: dict) -> None:
        done[row["id"]] = row
        if out_path:
            append_jsonl(out_path, [row])

    policy = (endpoint or EndpointPolicy()).for_stage(
        model, kept=str(out_path or "memory"), resume="run notebook 07_bfcl again with the same settings")
    run_parallel(todo, work, keep, workers=worker_count(model), desc=f"{name} · {mode}", unit="question",
                 progress=progress, endpoint=policy, label=lambda question: question.id)
    return [done[q.id] for q in questions if q.id in done]
