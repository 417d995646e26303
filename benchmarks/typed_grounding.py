"""Typed grounding against untyped, item by item, on requests that are not the real-tool test set.

Grounded decoding makes the first call's free string values ones the request says. Untyped, any
of the request's readings may fill any string (a span of its words, a code it names, an ISO date):
the student writes ``"currency": "Leu"`` for "Romanian Leu", ``"pickup_time": "23 May 2026"``,
and, left to close the object, drops the optional ``"date"`` the request gave. Typed
(:meth:`toolalpaca_utils.saying.Readings.for_parameter`, the book's grounding), a parameter of a
kind the corpus's value generator knows takes only the request's values of that kind, an optional
one whose kind the request does not say is left out, and one whose kind no other parameter takes
is passed. The untyped arm is the same decoding with the readings handed over as a plain list.

Both arms decode "retrieved" (the book's best student rows) with the same adapter, on:

- held-out: the training requests notebook 03 held out (``eval_fraction``, seeded as training
  splits them): tools the student has seen, requests it has not;
- unseen simulated: notebook 04's simulated set (3 a tool).

    python benchmarks/typed_grounding.py --adapter runs/cpu/training/adapter --corpus runs/cpu/simulation

About 10 minutes on 2 cores. Measured 2026-12-07 (cpu corpus, seed 0, the adapter notebook 03
trains), untyped -> typed, % (items only untyped / only typed gets right, McNemar exact p):

    held-out (49)   argument match  53.1 -> 75.5   0 / 11   p 0.001
                    overall         53.1 -> 75.5   0 / 11   p 0.001
    simulated (21)  argument match  76.2 -> 85.7   0 / 2    p 0.5
                    overall         66.7 -> 76.2   0 / 2    p 0.5

Well-formed and API match move by one item at most (the function is retrieval's choice).
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from toolalpaca_utils.agents import episode as episode_module
from toolalpaca_utils.corpus import load_tools
from toolalpaca_utils.evaluation import EvalItem, evaluate_grid, items_from_corpus, spread_over_tools
from toolalpaca_utils.llm import open_chat
from toolalpaca_utils.stats import compare_runs
from toolalpaca_utils.training.run import heldout_instances

METRICS = ("well_formed", "api_match", "argument_match", "overall")


def sets(corpus: Path) -> dict[str, tuple[list[EvalItem], dict]]:
    records, held = load_tools(corpus), heldout_instances(corpus)
    unseen, unseen_records = items_from_corpus(corpus)
    return {"held-out": ([EvalItem(r["id"], r["tool"], r["instruction"], r["golden"], "held-out")
                          for r in held if r["golden"]], records),
            "simulated": (spread_over_tools(unseen, 21), unseen_records)}


@contextmanager
def untyped():
    """Grounded decoding as before typing: the readings as a plain list, so every free string
    may take any of them and no parameter is dropped or made required."""
    typed = episode_module.readings
    episode_module.readings = lambda text: list(typed(text))
    try:
        yield
    finally:
        episode_module.readings = typed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", default="runs/cpu/training/adapter", help="the student's adapter (peft folder)")
    ap.add_argument("--corpus", type=Path, default=Path("runs/cpu/simulation"), help="the corpus it was trained on")
    ap.add_argument("--work", type=Path, default=Path("runs/typed_grounding"), help="episode rows (a rerun resumes)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/typed_grounding.json"))
    args = ap.parse_args()
    started, named, rows = time.perf_counter(), sets(args.corpus), {}
    with open_chat("embedded", "smollm2-135m-instruct", replicas=2, cache_dir=args.work / "llm-cache") as teacher:
        for arm in ("untyped", "typed"):
            with untyped() if arm == "untyped" else nullcontext():
                runs, _ = evaluate_grid("smollm2-135m-instruct", {"fine-tuned": args.adapter}, named,
                                        out_dir=args.work / arm, teacher=teacher, decodings=["retrieved"],
                                        progress=False, replicas=2, tool_choice="required", thought="documented")
            rows.update({(arm, set_name): run.rows for set_name, run in runs})
    table = [{"set": s, "metric": m, **compare_runs(rows[("untyped", s)], rows[("typed", s)], m)}
             for s in named for m in METRICS]
    minutes = round((time.perf_counter() - started) / 60, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"adapter": args.adapter, "corpus": str(args.corpus), "minutes": minutes,
                                    "table": table}, indent=1))
    print(f"untyped (a) -> typed (b) grounding, retrieved decoding ({minutes} min):")
    for r in table:
        print(f"  {r['set']:<10} {r['metric']:<15} n={r['n']:<3} {r['a %']:5.1f} -> {r['b %']:5.1f}  "
              f"only untyped {r['a only']}, only typed {r['b only']}, p {r['p (McNemar exact)']:.3f}")


if __name__ == "__main__":
    main()
