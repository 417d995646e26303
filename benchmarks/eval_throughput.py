"""Generated tokens per second of the local HF backend: one prompt at a time vs batched (plain
left padding, and ours: each tool's documentation encoded once), on the same prompts, greedy,
with identical outputs asserted.

    python benchmarks/eval_throughput.py [--n 16] [--batch 16] [--max-tokens 48] [--dtype float32]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from toolalpaca_utils.llm import LocalChatModel
from toolalpaca_utils.performance import benchmark_summary
from toolalpaca_utils.react import build_messages
from toolalpaca_utils.realtools import load_real_eval, real_tool_records

RESULTS = Path(__file__).resolve().parent / "results"


def timed(model: LocalChatModel, chats, max_tokens: int):
    start = time.perf_counter()
    results = model.chat_batch(chats, max_tokens=max_tokens)
    seconds = time.perf_counter() - start
    tokens = sum(r.completion_tokens for r in results)
    return results, {"seconds": round(seconds, 2), "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds, 2)}


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="float32 (default): greedy outputs must be identical across batch shapes")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    records = {r["Name"]: r for r in real_tool_records()}
    chats = [build_messages(records[it["tool"]], it["instruction"]) for it in load_real_eval()[: args.n]]
    # the reference ways keep nothing between calls and pad on the left; ours starts from an empty prefix cache
    model = LocalChatModel(max_batch_size=1, dtype=getattr(torch, args.dtype), min_shared_prefix=0,
                           prefix_cache_tokens=0)
    model.chat_batch(chats[:1], max_tokens=4)  # warm-up
    sequential, seq_stats = timed(model, chats, args.max_tokens)
    model.max_batch_size = args.batch
    padded, pad_stats = timed(model, chats, args.max_tokens)
    model.min_shared_prefix, model.prefix_cache_tokens = 32, 65536
    model.clear_prefix_cache()
    batched, bat_stats = timed(model, chats, args.max_tokens)
    same = [a.text == b.text == c.text for a, b, c in zip(sequential, padded, batched)]
    out = {"benchmark": "eval_throughput", "n_prompts": args.n, "batch_size": args.batch, "max_tokens": args.max_tokens,
           "dtype": args.dtype, "sequential": seq_stats, "batched_left_padded": pad_stats, "batched": bat_stats,
           "ratio_batched_vs_sequential": round(bat_stats["tokens_per_s"] / seq_stats["tokens_per_s"], 2),
           "ratio_left_padded_vs_sequential": round(pad_stats["tokens_per_s"] / seq_stats["tokens_per_s"], 2),
           "identical_outputs": f"{sum(same)}/{len(same)}", "target": ">= 3x"}
    out["summary"] = benchmark_summary(
        title="evaluation throughput", measure="generated tokens/s",
        baseline="one prompt at a time", baseline_value=seq_stats["tokens_per_s"],
        ours=f"batched, prefixes encoded once (bs={args.batch})", ours_value=bat_stats["tokens_per_s"],
        target_ratio=3.0,
        note=f"{args.n} real-tool prompts, greedy, {args.max_tokens} new tokens, {args.dtype}; plain left-padded "
             f"batching: {out['ratio_left_padded_vs_sequential']}x; identical outputs {out['identical_outputs']}")
    print(f"sequential: {seq_stats}\nbatched, left-padded (bs={args.batch}): {pad_stats}\n"
          f"batched, prefixes encoded once (bs={args.batch}): {bat_stats}")
    print(f"ratio batched/sequential tokens/s: {out['ratio_batched_vs_sequential']}  (target >= 3); "
          f"left-padded only: {out['ratio_left_padded_vs_sequential']}; identical greedy outputs: {out['identical_outputs']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_throughput.json").write_text(json.dumps(out, indent=1))
    assert all(same), "batched greedy outputs differ from sequential ones"
    return out


if __name__ == "__main__":
    main()
