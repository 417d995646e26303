"""Accepted instances per generated token: free-text ReAct (the reference's way) vs JSON-schema
constrained steps, with the same model, tools, seed and instructions, in one process. A third
run shows free text with the simulation's scaffold (worked calls in the prompt, the answer from a
short chat: ``SimulationConfig.scaffold``); the target ratio is constrained vs plain free text.

The instructions are the hand-written real-tool evaluation requests, and the calls go to the real
tools service, so the two runs differ only in how the assistant's steps are decoded. Acceptance
uses the simulation stage's own filters (``simulation.rejection_reason``).

    python benchmarks/simulation_yield.py [--n 24] [--max-steps 3]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from toolalpaca_utils.agents import HttpExecutor, run_assistant
from toolalpaca_utils.llm import open_chat
from toolalpaca_utils.performance import benchmark_summary
from toolalpaca_utils.realtools import load_real_eval, real_tool_records, serve_realtools
from toolalpaca_utils.simulation import SimulationConfig, rejection_reason

RESULTS = Path(__file__).resolve().parent / "results"


def run_mode(client, items, records, mode: str, max_steps: int, scaffold: bool = False) -> dict:
    cfg = SimulationConfig(mode=mode, max_steps=max_steps, answer_after_success=True, scaffold=scaffold)
    tokens0, start = client.stats.completion_tokens, time.perf_counter()
    accepted, reasons = 0, {}
    for k, item in enumerate(items):
        traj = run_assistant(client, records[item["tool"]], item["instruction"], HttpExecutor(), seed=k,
                             **cfg.episode_options())
        reason = rejection_reason(traj, cfg)
        accepted += reason is None
        reasons[reason or "kept"] = reasons.get(reason or "kept", 0) + 1
    seconds = time.perf_counter() - start
    tokens = client.stats.completion_tokens - tokens0
    return {"mode": mode + ("+scaffold" if scaffold else ""), "instances": len(items), "accepted": accepted,
            "generated_tokens": tokens, "seconds": round(seconds, 1),
            "accepted_per_1k_tokens": round(1000 * accepted / max(1, tokens), 3),
            "accepted_per_minute": round(60 * accepted / seconds, 3), "outcomes": reasons}


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="instructions (spread over the tools)")
    ap.add_argument("--max-steps", type=int, default=3)
    args = ap.parse_args()
    items = load_real_eval()
    by_tool: dict[str, list] = {}
    for it in items:
        by_tool.setdefault(it["tool"], []).append(it)
    picked = [lst[i] for i in range(max(map(len, by_tool.values()))) for lst in by_tool.values() if i < len(lst)][:args.n]
    with serve_realtools() as url, open_chat(cache_dir=None) as client:  # no cache: every token is generated
        records = {r["Name"]: r for r in real_tool_records(base_url=url)}
        results = [run_mode(client, picked, records, m, args.max_steps, scaffold)
                   for m, scaffold in (("free", False), ("free", True), ("constrained", False))]
    free, scaffolded, constrained = results

    def ratio(a: dict, b: dict) -> float:
        return round(a["accepted_per_1k_tokens"] / b["accepted_per_1k_tokens"], 2) if b["accepted_per_1k_tokens"] \
            else float("inf")

    out = {"benchmark": "simulation_yield", "results": results,
           "ratio_constrained_vs_free_per_token": ratio(constrained, free),
           "ratio_constrained_vs_scaffolded_free_per_token": ratio(constrained, scaffolded), "target": ">= 2x"}
    out["summary"] = benchmark_summary(
        title="simulation yield", measure="accepted instances per 1k generated tokens",
        baseline="free-text ReAct", baseline_value=free["accepted_per_1k_tokens"],
        ours="constrained steps", ours_value=constrained["accepted_per_1k_tokens"], target_ratio=2.0,
        note=f"{len(picked)} real-tool requests, max {args.max_steps} steps, same model and seed; accepted "
             f"{free['accepted']} vs {constrained['accepted']} (free with the scaffold: {scaffolded['accepted']}, "
             f"{scaffolded['accepted_per_1k_tokens']} per 1k tokens)")
    print(f"{'mode':16s} {'accepted':>9s} {'tokens':>8s} {'acc/1k tok':>11s} {'acc/min':>8s} {'seconds':>8s}")
    for r in results:
        print(f"{r['mode']:16s} {r['accepted']:>5d}/{r['instances']:<3d} {r['generated_tokens']:>8d} "
              f"{r['accepted_per_1k_tokens']:>11.3f} {r['accepted_per_minute']:>8.3f} {r['seconds']:>8.1f}")
    print(f"ratio constrained/free (accepted per 1k tokens): {out['ratio_constrained_vs_free_per_token']}  "
          f"(target >= 2); constrained/free+scaffold: {out['ratio_constrained_vs_scaffolded_free_per_token']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulation_yield.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
