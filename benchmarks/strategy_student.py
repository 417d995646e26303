"""Which instruction strategy gives the better student? The reference's way (instruction-first:
the user agent writes requests, the assistant finds the calls) against ours (call-first: a
schema-valid call is sampled first, then a request that needs exactly that call).

It needs a profile's simulation corpus (notebook 02): that corpus supplies one strategy, and its
training tools are simulated again here with the other strategy (same teacher, mode, seed and
instructions per tool). Both corpora are cut to the same number of instances, drawn round-robin
over the same tools; each trains one LoRA adapter with the training notebook's hyper-parameters
and the same number of steps; both adapters are evaluated on the same unseen tools (the corpus's
evaluation tools, answered by the simulated executor, and the real tools over HTTP).

    python benchmarks/strategy_student.py [--profile cpu] [--max-items-simulated 21] [--max-items-real 20]

About 20 minutes at the cpu profile on 2 cores; the simulation and each point resume when rerun.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from toolalpaca_utils.corpus import load_split, load_tools
from toolalpaca_utils.diversity import diversity_subsets, run_point
from toolalpaca_utils.evaluation import items_from_corpus, items_from_real, spread_over_tools
from toolalpaca_utils.llm import open_chat
from toolalpaca_utils.performance import benchmark_summary
from toolalpaca_utils.profiles import load_profile
from toolalpaca_utils.realtools import serve_realtools
from toolalpaca_utils.runs import require_stage, stage_dir
from toolalpaca_utils.simulation import STRATEGIES, SimulationConfig, simulate, summarise
from toolalpaca_utils.training import TrainConfig, profile_parameters

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = "instruction-first"


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--max-items-simulated", type=int, default=21)
    ap.add_argument("--max-items-real", type=int, default=20)
    ap.add_argument("--max-steps-eval", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=24)
    args = ap.parse_args()
    started = time.perf_counter()

    corpus_dir = require_stage(args.profile, "simulation")
    base_cfg = SimulationConfig(**json.loads((corpus_dir / "config.json").read_text()))
    other = next(s for s in STRATEGIES if s != base_cfg.strategy)
    records = load_tools(corpus_dir)
    train = {base_cfg.strategy: load_split(corpus_dir, "train")}
    train_tools = sorted({r["tool"] for r in train[base_cfg.strategy]})
    eval_tools = sorted({r["tool"] for r in load_split(corpus_dir, "eval")})
    out_dir = stage_dir(args.profile, "strategies", create=True)
    common = load_profile(args.profile, "02_simulation")

    with serve_realtools() as url, open_chat(common["teacher_endpoint"], common["teacher_model"],
                                              dialect=common["teacher_dialect"],
                                              cache_dir=stage_dir(args.profile, "llm-cache", create=True),
                                              replicas=common.get("teacher_replicas", 1)) as teacher:
        # the other strategy on the same training tools; every instance lands in its train split
        cfg = SimulationConfig(**{**base_cfg.__dict__, "strategy": other, "n_eval_tools": 0})
        result = simulate(teacher, [records[t] for t in train_tools], cfg, out_dir=out_dir / other / "corpus")
        train[other] = load_split(out_dir / other / "corpus", "train")
        yields = {other: {"accepted": result.accepted, "instances": sum(result.counts.values()),
                          "accepted_per_1k_tokens": round(result.yield_per_1k_tokens(), 2),
                          "drop_reasons": result.drop_reasons,
                          # summed over instances, so a resumed run still reports the whole simulation
                          "instance_seconds": round(summarise(out_dir / other / "corpus").seconds, 1)}}

        n = min(len(v) for v in train.values())
        if n == 0:  # one strategy kept nothing: there is no student to train on it
            counts = {k: len(v) for k, v in train.items()}
            empty = min(counts, key=counts.get)
            summary = benchmark_summary(
                title="student by instruction strategy",
                measure="accepted training instances, same tools and requests per tool",
                baseline=f"{REFERENCE} corpus", baseline_value=counts[REFERENCE],
                ours="call-first corpus", ours_value=counts["call-first"], target_ratio=1.0,
                note=f"the {empty} corpus has no accepted instance, so no student could be trained on it")
            return _write({"benchmark": "strategy_student", "profile": args.profile, "instances_per_corpus": 0,
                           "train_tools": len(train_tools), "accepted_train": counts,
                           "simulation_of_other_strategy": yields, "summary": summary,
                           "minutes": round((time.perf_counter() - started) / 60, 1)})
        params = {**profile_parameters(args.profile), "eval_fraction": 0.0, "grad_accum": 1}
        params.pop("unseen_eval", None)
        epochs = float(params.pop("epochs", 1))
        batch = int(params.get("per_device_batch_size", 4))
        params["max_steps"] = max(1, math.ceil(epochs * n / batch))  # the same steps for both corpora
        sim_items, sim_records = items_from_corpus(corpus_dir)
        real_items, real_records = items_from_real(url)
        eval_sets = {"simulated": (spread_over_tools(sim_items, args.max_items_simulated), sim_records),
                     "real": (spread_over_tools(real_items, args.max_items_real), real_records)}
        rows = []
        for strategy in (REFERENCE, "call-first"):
            tools_here = sorted({r["tool"] for r in train[strategy]})
            (subset,), _ = diversity_subsets(train[strategy], [len(tools_here)], n_instances=n, seed=0,
                                            eval_tools=eval_tools)
            point = run_point(subset, records, eval_sets, out_dir=out_dir / strategy, teacher=teacher,
                              train_config=TrainConfig(**params), max_steps_eval=args.max_steps_eval,
                              batch_size=args.batch_size)
            rows += [{"strategy": strategy, **row} for row in point]

    by = {(r["strategy"], r["set"]): r for r in rows}
    metrics = ("well_formed", "api_match", "argument_match", "overall")
    print(f"{'strategy':18s} {'set':10s} {'n':>3s} " + " ".join(f"{m:>15s}" for m in metrics))
    for r in rows:
        print(f"{r['strategy']:18s} {r['set']:10s} {r['n']:>3d} " + " ".join(f"{r[m]:>15.1f}" for m in metrics))

    def api(strategy: str) -> float:
        return sum(by[(strategy, s)]["api_match"] for s in eval_sets) / len(eval_sets)

    out = {"benchmark": "strategy_student", "profile": args.profile, "instances_per_corpus": n,
           "train_steps": params["max_steps"], "train_tools": len(train_tools), "eval_tools": eval_tools,
           "simulation_of_other_strategy": yields, "rows": rows,
           "minutes": round((time.perf_counter() - started) / 60, 1)}
    out["summary"] = benchmark_summary(
        title="student by instruction strategy", measure="API match on unseen tools, mean of the simulated and "
        "real sets (%)", baseline=f"{REFERENCE} corpus", baseline_value=api(REFERENCE),
        ours="call-first corpus", ours_value=api("call-first"), target_ratio=1.0,
        note=f"{n} training instances each over the same {len(train_tools)} tools, {params['max_steps']} steps; "
             f"{len(eval_sets['simulated'][0])} simulated + {len(eval_sets['real'][0])} real unseen items")
    print(f"API match, mean of both sets: {REFERENCE} {api(REFERENCE):.1f} vs call-first {api('call-first'):.1f}")
    return _write(out)


def _write(out: dict) -> dict:
    print(json.dumps({k: v for k, v in out.items() if k not in ("rows", "summary")}, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "strategy_student.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
