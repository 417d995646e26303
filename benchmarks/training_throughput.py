"""Training throughput: the reference recipe (every sequence padded to a fixed length, random
batches, full-vocabulary logits) vs ours (dynamic padding, batches of one tool's conversations of
similar lengths, the tool documentation computed once per batch, logits only where the loss is),
same data, model, LoRA and seed, one epoch each, side by side in one process.

    python benchmarks/training_throughput.py [--n 8] [--pad-to 1024] [--batch 4] [--corpus DIR]

Data: the training split of ``--corpus``, else of ``runs/cpu/simulation`` when that stage has
run, else a synthetic corpus made from the hand-written test fixture (instances replicated with
1 to 3 of their steps kept, so lengths vary); the output says which. Tokens are non-pad tokens.
Peak RSS is sampled during each recipe; the CPU-time figures (tokens per CPU-second × threads)
are what the wall-clock ones would be on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from toolalpaca_utils.corpus import load_split, load_tools
from toolalpaca_utils.performance import benchmark_summary
from toolalpaca_utils.runs import MissingStageError, require_stage
from toolalpaca_utils.training import TrainConfig, plain_weights, train_lora

from _synthetic import synthetic_corpus  # benchmarks/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
FIXTURE = ROOT / "tests" / "fixtures" / "corpus_small"


class RssPeak:
    """Peak resident memory of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def gb(self) -> float:
        return round(self.peak / 1e9, 3)


def pick_data(corpus: str | None, n: int, seed: int):
    if corpus is None:
        try:
            corpus = str(require_stage("cpu", "simulation"))
        except MissingStageError:
            corpus = None
    if corpus is not None and load_split(corpus, "train"):
        train = load_split(corpus, "train")
        rng = random.Random(seed)
        chosen = rng.sample(train, min(n, len(train)))
        return load_tools(corpus), chosen, f"simulation corpus {corpus} ({len(chosen)} of {len(train)} train instances)"
    source = load_split(FIXTURE, "train") + load_split(FIXTURE, "eval")
    n_tools = max(1, n // 4)
    records, instances = synthetic_corpus(load_tools(FIXTURE), source, n, n_tools=n_tools, seed=seed)
    return records, instances, (
        f"synthetic: {n} instances replicated from the {len(source)} hand-written fixture instances "
        f"(tests/fixtures/corpus_small) with 1-3 of their steps kept, over {n_tools} renamed tool clones "
        f"(no simulation corpus found)")


def run_recipe(name, records, instances, model, tokenizer, cfg: TrainConfig, **kw) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as out, RssPeak() as rss:
        result = train_lora(records, instances, [], out_dir=out, config=cfg, resume=False,
                            model=copy.deepcopy(model), tokenizer=tokenizer, **kw)
    threads = result.threads
    return {
        "recipe": name,
        "non_pad_tokens": result.tokens,
        "seconds_per_epoch": round(result.train_seconds, 2),
        "tokens_per_s": round(result.tokens / result.train_seconds, 2),
        "cpu_seconds": round(result.cpu_seconds, 2),
        "tokens_per_s_cpu_time": round(result.tokens / (result.cpu_seconds / threads), 2) if result.cpu_seconds else None,
        "peak_rss_gb": rss.gb,
        "optimizer_steps": result.global_step,
        "mean_loss": round(result.train_loss, 4) if result.train_loss is not None else None,
    }


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="a corpus directory (default: runs/cpu/simulation, else synthetic)")
    ap.add_argument("--n", type=int, default=8, help="training instances (one epoch over them per recipe)")
    ap.add_argument("--pad-to", type=int, default=1024, help="the reference recipe's fixed length (the paper: 2048)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared machine, 2 threads stall on each other "
                         "and the many small ops of our recipe suffer most)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    wall0 = time.perf_counter()

    from toolalpaca_utils.llm.hf import load_model_and_tokenizer

    records, instances, data_note = pick_data(args.corpus, args.n, args.seed)
    model, tokenizer = load_model_and_tokenizer(device="cpu", dtype=torch.float32)
    model = plain_weights(model)
    # the cpu profile's LoRA; one optimizer step per batch so both recipes take the same steps
    cfg = TrainConfig(lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_last_layers=8, learning_rate=1e-3,
                      epochs=1, per_device_batch_size=args.batch, grad_accum=1, max_length=args.pad_to,
                      seed=args.seed, eval_fraction=0.0, warmup=0, save_steps=10_000, num_threads=args.threads,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    print(f"data: {data_note}", flush=True)
    # warm-up (kernel selection, allocator), so that neither recipe pays it
    run_recipe("warm-up", records, instances[:1], model, tokenizer, cfg, max_steps=1)

    ours = run_recipe("ours", records, instances, model, tokenizer, cfg)
    print("ours:", ours, flush=True)
    reference = run_recipe("reference", records, instances, model, tokenizer,
                           TrainConfig(**{**cfg.to_dict(), "group_by_length": False, "label_positions_only": False,
                                          "share_prefix": False}),
                           pad_to=args.pad_to)
    print("reference:", reference, flush=True)

    ratio = round(ours["tokens_per_s"] / reference["tokens_per_s"], 2)
    ratio_cpu = (round(ours["tokens_per_s_cpu_time"] / reference["tokens_per_s_cpu_time"], 2)
                 if ours["tokens_per_s_cpu_time"] and reference["tokens_per_s_cpu_time"] else None)
    out = {
        "benchmark": "training_throughput",
        "data": data_note,
        "n_instances": len(instances),
        "model": "smollm2-135m-instruct (GGUF dequantised to fp32)",
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "last_layers": cfg.lora_last_layers,
                 "target_modules": list(cfg.target_modules)},
        "batch_size": args.batch, "threads": args.threads, "epochs": 1,
        "recipes": {
            "reference": {"padding": f"every sequence to {args.pad_to} tokens", "batches": "random",
                          "logits": "every position", **reference},
            "ours": {"padding": "to the longest in the batch",
                     "batches": "one tool per batch where possible, similar lengths",
                     "shared_prefix": "system turn (tool documentation) computed once per batch",
                     "logits": "loss-bearing positions only", **ours},
        },
        "ratio_tokens_per_s": ratio,
        "ratio_tokens_per_s_cpu_time": ratio_cpu,
        "target": ">= 2x",
        "wall_seconds_total": round(time.perf_counter() - wall0, 1),
    }
    out["summary"] = benchmark_summary(
        title="training throughput", measure="non-pad tokens/s",
        baseline=f"pad to {args.pad_to}", baseline_value=reference["tokens_per_s"],
        ours="dynamic padding + grouping", ours_value=ours["tokens_per_s"], target_ratio=2.0,
        note=f"{len(instances)} instances, one epoch each; peak RSS {reference['peak_rss_gb']} vs "
             f"{ours['peak_rss_gb']} GB; by CPU time {ratio_cpu}x")
    print(f"\n{'recipe':<10} {'non-pad tok':>11} {'s/epoch':>8} {'tok/s':>8} {'tok/s (cpu time)':>17} {'peak RSS GB':>12}")
    for name in ("reference", "ours"):
        r = out["recipes"][name]
        print(f"{name:<10} {r['non_pad_tokens']:>11} {r['seconds_per_epoch']:>8} {r['tokens_per_s']:>8} "
              f"{str(r['tokens_per_s_cpu_time']):>17} {r['peak_rss_gb']:>12}")
    print(f"ratio ours/reference, non-pad tokens/s: {ratio}x wall-clock, {ratio_cpu}x by CPU time (target >= 2x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training_throughput.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
