"""STE exploitation by fine-tuning, and continual learning over batches of tools.

:func:`finetune` trains a LoRA on distilled examples (:mod:`toolalpaca_utils.training`).
:func:`continual_learning`: the tools arrive in batches; each round fine-tunes the previous
round's model on the new batch, with or without a replay sample of the earlier batches' examples
(:func:`replay_sample`); accuracy per batch after every round is the forgetting table
(:meth:`ContinualResult.table`). A condition is a list of adapters on one base, never a copy
of the model.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .metrics import TokenCap, correct_by_tool


def finetune(records, examples: Sequence[dict], *, out_dir: str | Path, model=None, tokenizer=None,
             keep_model: bool = False, **train_params):
    """LoRA fine-tuning on distilled examples with :func:`toolalpaca_utils.training.train_lora`
    (no held-out split: every example trains). ``train_params`` are TrainConfig fields."""
    from ..training import EmptyCorpusError, train_lora

    if not examples:
        raise EmptyCorpusError("no distilled STE examples: nothing to fine-tune on")
    return train_lora(records, list(examples), [], out_dir=out_dir, model=model, tokenizer=tokenizer,
                      keep_model=keep_model, resume=False, **train_params)


def tool_batches(tools: Sequence[str], n_batches: int) -> list[list[str]]:
    """The tools split into ``n_batches`` contiguous batches of near-equal size, in order."""
    tools = list(tools)
    n_batches = max(1, min(n_batches, len(tools)))
    size, extra = divmod(len(tools), n_batches)
    out, start = [], 0
    for b in range(n_batches):
        end = start + size + (1 if b < extra else 0)
        out.append(tools[start:end])
        start = end
    return out


def replay_sample(examples: Sequence[dict], fraction: float, seed: int = 0) -> list[dict]:
    """A seeded sample of ``ceil(fraction × n)`` earlier examples (none when fraction is 0)."""
    examples = list(examples)
    if fraction <= 0 or not examples:
        return []
    k = min(len(examples), max(1, math.ceil(fraction * len(examples))))
    return random.Random(seed).sample(examples, k)


@dataclass
class ContinualResult:
    rows: list[dict] = field(default_factory=list)   # {"condition", "round", "batch", "correct", "n", ...}
    runs: dict = field(default_factory=dict)        # (condition, round) -> EvalRun
    trainings: list[dict] = field(default_factory=list)

    def table(self):
        """The forgetting table: correct % per (condition, round) × batch, and over the batches seen
        so far ("seen"; after the last round: all batches)."""
        import pandas as pd

        if not self.rows:
            return pd.DataFrame()
        frame = pd.DataFrame(self.rows)
        t = frame.pivot_table(index=["condition", "round"], columns="batch", values="correct", aggfunc="first")
        t.columns = [f"batch {c}" for c in t.columns]

        def pct(sub):
            return round(100 * sub.n_correct.sum() / sub.n.sum(), 1) if sub.n.sum() else None

        t["seen"] = [pct(frame[(frame.condition == c) & (frame["round"] == r) & (frame.batch <= r)]) for c, r in t.index]
        return t


def continual_learning(records: dict[str, dict], examples: Sequence[dict], items, *, batches: Sequence[Sequence[str]],
                       base_model: str, student, out_dir: str | Path, replay_fraction: float = 0.1,
                       conditions: Sequence[str] = ("no replay", "replay"), max_steps_eval: int = 1,
                       seed: int = 0, progress: bool = False, eval_scope: str = "seen",
                       eval_max_tokens: int | None = None, eval_options: dict | None = None,
                       **train_params) -> ContinualResult:
    """Train round by round (round r = batch r of the tools, numbered from 1) and evaluate after
    every round on the eval items of the batches seen so far (``eval_scope="all"``: of every
    batch). Each round continues from the previous round's model of its condition: ``base_model``
    with that condition's earlier adapters merged in, a fresh LoRA on top; ``replay`` adds a
    ``replay_fraction`` sample of the earlier batches' examples. A condition is its list of
    adapters, not a model: one model is in memory at a time (:func:`_round_start`), so a 7B
    student fits where a copy per condition would not. A round's model is served by ``student``
    (:class:`~toolalpaca_utils.llm.Student`) as the stack of its rounds' adapters.
    Round 1 is the same for every condition (nothing to replay yet): trained and evaluated once.
    ``eval_options`` go to every round's :func:`~toolalpaca_utils.evaluation.evaluate` (e.g. ``mode``
    and ``tool_choice``)."""
    if eval_scope not in ("seen", "all"):
        raise ValueError(f"eval_scope must be 'seen' or 'all', got {eval_scope!r}")
    train_params = {**train_params, "seed": train_params.get("seed", seed)}
    out_dir = Path(out_dir)
    result = ContinualResult()
    adapters: dict[str, list] = {c: [] for c in conditions}  # condition -> its adapters, in training order
    by_tool: dict[str, list[dict]] = {}
    for ex in examples:
        by_tool.setdefault(ex["tool"], []).append(ex)
    for r, batch in enumerate(batches, 1):
        new = [ex for t in batch for ex in by_tool.get(t, [])]
        earlier = [ex for t in (t for ts in batches[: r - 1] for t in ts) for ex in by_tool.get(t, [])]
        shared = None
        for cond in conditions:
            if r == 1 and shared is not None:  # round 1: nothing to replay, the same for every condition
                adapters[cond], run, info = shared[0], shared[1], {**shared[2], "condition": cond}
            else:
                replay = replay_sample(earlier, replay_fraction, seed + r) if cond == "replay" else []
                info = {"condition": cond, "round": r, "new": len(new), "replayed": len(replay)}
                adapters[cond] = _train_round(records, new + replay, base_model, adapters[cond], info,
                                              out_dir / cond.replace(" ", "_") / f"round{r}", train_params)
                seen = {t for ts in batches[:r] for t in ts}
                todo = [it for it in items if eval_scope == "all" or it.tool in seen]
                run = _evaluate_round(student, adapters[cond], todo, records, name=f"{cond} r{r}",
                                      max_steps=max_steps_eval, max_tokens=eval_max_tokens, progress=progress,
                                      options=eval_options)
                shared = shared or (adapters[cond], run, info)
            result.trainings.append(info)
            result.runs[(cond, r)] = run
            result.rows += _batch_rows(run, batches, cond, r)
    return result


def _round_start(base_model: str, adapters: Sequence):
    """(model, tokenizer): ``base_model`` freshly loaded with ``adapters`` merged in, in order: the
    model a round continues from. Loading again per round costs seconds (a 7B: under a minute
    from the page cache) and keeps one model in memory instead of one per condition."""
    from ..llm import hf

    model, tok = hf.load_model_and_tokenizer(base_model)
    for adapter in adapters:
        model = hf.peft_model(model, adapter).merge_and_unload()   # adapter_dir: a str path
    return model, tok


def _train_round(records, train: list[dict], base_model: str, adapters: list, info: dict, out_dir: Path,
                 train_params: dict) -> list:
    """The condition's adapters after fine-tuning its model on ``train`` (unchanged when empty)."""
    if not train:
        info["skipped"] = "no examples for this batch"
        return adapters
    model, tok = _round_start(base_model, adapters)
    res = finetune(records, train, out_dir=out_dir, model=model, tokenizer=tok, keep_model=False, **train_params)
    info.update(steps=res.global_step, final_loss=res.final_loss, train_seconds=round(res.train_seconds, 1))
    del model
    _release_memory()
    return [*adapters, res.adapter_dir]


def _release_memory() -> None:
    """Free the finished round's model now, not at some later collection: on a GPU the next
    round's load would otherwise find the old weights still allocated."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _evaluate_round(student, adapters: list, items, records, *, name: str, max_steps: int, max_tokens: int | None,
                    progress: bool, options: dict | None = None):
    from ..evaluation import evaluate

    with student.serve(adapters, name="ste-" + name.replace(" ", "-")) as chat:
        model = TokenCap(chat, max_tokens) if max_tokens else chat
        return evaluate(model, items, records, name=name, max_steps=max_steps, progress=progress, **(options or {}))


def _batch_rows(run, batches: Sequence[Sequence[str]], cond: str, r: int) -> list[dict]:
    """Correct counts per batch of tools for one round's evaluation."""
    per_tool = correct_by_tool(run)
    rows = []
    for b in range(1, len(batches) + 1):
        c = sum(per_tool.get(t, (0, 0))[0] for t in batches[b - 1])
        n = sum(per_tool.get(t, (0, 0))[1] for t in batches[b - 1])
        if n:
            rows.append({"condition": cond, "round": r, "batch": b, "n_correct": c, "n": n,
                         "correct": round(100 * c / n, 1)})
    return rows
