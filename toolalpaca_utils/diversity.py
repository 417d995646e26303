"""Stage 5: tool diversity at a fixed budget — the same number of training instances drawn from
more or fewer distinct tools, each subset trained identically and evaluated on the same unseen
tools. The reference states the trend (more tools → better generalisation) without numbers;
this stage measures it.
"""
from __future__ import annotations

import random
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


class DiversityCapWarning(UserWarning):
    """``n_instances`` is more than the smallest point of the curve holds: every point gets less."""


@dataclass
class Subset:
    n_tools: int
    seed: int
    tools: list[str]
    instances: list[dict]


def diversity_subsets(train_instances: Sequence[dict], n_tools: Sequence[int], *, n_instances: int | None = None,
                      seed: int = 0, eval_tools: Sequence[str] = ()) -> tuple[list[Subset], int]:
    """Subsets with equal instance counts and ``k`` distinct tools each (``k`` in ``n_tools``).

    Tools are taken from one seeded permutation, so the tools of a smaller subset are among those
    of a larger one, and instances are drawn round-robin over the chosen tools (as even as the
    tools allow). The count is the requested ``n_instances`` capped by what the smallest subset can
    hold (a :class:`DiversityCapWarning` with the numbers when it is cut); it is returned.
    Evaluation tools can never enter a subset.
    """
    by_tool: dict[str, list[dict]] = defaultdict(list)
    for inst in train_instances:
        if inst["tool"] in set(eval_tools):
            raise ValueError(f"instance {inst['id']} belongs to evaluation tool {inst['tool']!r}")
        by_tool[inst["tool"]].append(inst)
    tools = sorted(by_tool)
    if not tools:
        raise ValueError("no training instances to draw subsets from")
    wanted = sorted(set(int(k) for k in n_tools))
    if wanted[0] < 1 or wanted[-1] > len(tools):
        raise ValueError(f"n_tools must lie in 1..{len(tools)} (training tools available), got {wanted}")
    rng = random.Random(seed)
    order = tools[:]
    rng.shuffle(order)
    capacity, smallest = min((sum(len(by_tool[t]) for t in order[:k]), k) for k in wanted)
    if n_instances and n_instances > capacity:
        # the budget is the study's one fixed quantity: a silent cut would misreport the curve
        warnings.warn(f"n_instances={n_instances} is more than the smallest point holds ({smallest} tool(s), "
                      f"{capacity} training instances, seed {seed}): every point trains on {capacity} "
                      f"instances. Lower n_instances to {capacity} or drop {smallest} from n_tools.",
                      DiversityCapWarning, stacklevel=2)
    count = min(n_instances or capacity, capacity)
    subsets = []
    for k in wanted:
        chosen = order[:k]
        pools = {t: rng.sample(by_tool[t], len(by_tool[t])) for t in chosen}
        picked: list[dict] = []
        while len(picked) < count:  # round-robin: one instance per tool per pass
            for t in chosen:
                if pools[t] and len(picked) < count:
                    picked.append(pools[t].pop())
        subsets.append(Subset(k, seed, chosen, picked))
    return subsets, count


def run_point(subset: Subset, records: dict, eval_sets: dict, *, out_dir: str | Path, teacher, train_config,
              max_steps_eval: int, student, decoding: dict | None = None) -> list[dict]:
    """Train one subset's adapter and evaluate it, served by ``student`` (a
    :class:`~toolalpaca_utils.llm.Student`) as ``k<n>-s<seed>``, on every set; one row per set.
    ``decoding``: :func:`~toolalpaca_utils.evaluation.evaluate`'s ``mode``, ``tool_choice`` and
    ``thought`` (default: free decoding)."""
    from .agents import chat_renderer
    from .evaluation import evaluate
    from .training import train_lora

    out_dir = Path(out_dir)
    result = train_lora(records, subset.instances, None, out_dir=out_dir, config=train_config)
    rows = []
    fmt = getattr(train_config, "prompt_format", "react")  # evaluated in the format it was trained in
    render = chat_renderer(student.model) if fmt == "chat" else None
    with student.serve([result.adapter_dir], name=f"k{subset.n_tools}-s{subset.seed}") as served:
        for set_name, (items, set_records) in eval_sets.items():
            run = evaluate(served, items, set_records, name=f"{subset.n_tools} tools", teacher=teacher,
                           max_steps=max_steps_eval, out_path=out_dir / f"eval-{set_name}.jsonl", progress=False,
                           prompt_format=fmt, render=render, **(decoding or {}))
            rows.append({"set": set_name, "n_tools": subset.n_tools, "seed": subset.seed,
                         "n_instances": len(subset.instances), "train_steps": result.global_step,
                         "final_loss": result.final_loss, **run.summary()})
    return rows


if __name__ == "__main__":  # python -m toolalpaca_utils.diversity --profile NAME [--key value ...]
    from toolalpaca_utils.book.run import run_stage

    raise SystemExit(run_stage("05_diversity"))
