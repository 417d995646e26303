"""Training throughput, three recipes on the same data, model, LoRA, steps and seed, one epoch
each, side by side in one process:

* **ours** — the project's trainer (:mod:`toolalpaca_utils.training`): dynamic padding, batches
  of one tool's conversations of similar lengths, the tool documentation computed once per batch,
  logits only where the loss is;
* **trl** — the headline baseline, the recipe the field uses: TRL's ``SFTTrainer`` with
  ``padding_free=True`` and ``assistant_only_loss=True`` on the same ReAct conversations
  (rendered by the training chat template, which gives the very tokens and loss mask ours uses);
* **pad** — the old reference: every sequence padded to ``--pad-to`` tokens, random batches,
  full-vocabulary logits (kept as a third row, not as the headline).

    python benchmarks/training_throughput.py [--n 8] [--pad-to 1024] [--batch 4] [--corpus DIR]

Data: the training split of ``--corpus``, else of ``runs/cpu/simulation`` when that stage has
run, else a synthetic corpus made from the hand-written test fixture (instances replicated with
1 to 3 of their steps kept, so lengths vary); the output says which. Instances longer than
``--pad-to`` are left out of every recipe (padding-free training does not truncate). Tokens are
non-pad tokens. Peak RSS is sampled during each recipe, in the same process (a later recipe's
peak cannot be below the memory an earlier one left allocated). The CPU-time figures (tokens per
CPU-second × threads) are what the wall-clock ones would be on an otherwise idle machine. The
decision rule (issue 21): unless ours is >= 1.3x faster than trl at equal loss, notebook 03
should train with ``SFTTrainer``.
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
from toolalpaca_utils.training import TrainConfig, plain_weights, react_conversations, sft_train, train_lora

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


def fitting(records, instances, tokenizer, max_length: int) -> list[dict]:
    """The instances whose whole conversation fits in ``max_length`` tokens."""
    from toolalpaca_utils.training import build_example

    return [i for i in instances if build_example(tokenizer, records[i["tool"]], i, 1 << 20)["length"] <= max_length]


def _row(name: str, *, tokens: int, seconds: float, cpu: float, threads: int, rss: RssPeak, steps: int,
         mean_loss: float | None, final_loss: float | None) -> dict:
    return {
        "recipe": name, "non_pad_tokens": tokens, "seconds_per_epoch": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 2),
        "cpu_seconds": round(cpu, 2), "tokens_per_s_cpu_time": round(tokens / (cpu / threads), 2) if cpu else None,
        "peak_rss_gb": rss.gb, "optimizer_steps": steps,
        "mean_loss": round(mean_loss, 4) if mean_loss is not None else None,
        "final_loss": round(final_loss, 4) if final_loss is not None else None,
    }


def run_recipe(name, records, instances, model, tokenizer, cfg: TrainConfig, **kw) -> dict:
    """The project's trainer (``pad_to`` in ``kw`` makes it the pad-to-N reference)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as out, RssPeak() as rss:
        result = train_lora(records, instances, [], out_dir=out, config=cfg, resume=False,
                            model=copy.deepcopy(model), tokenizer=tokenizer, **kw)
    return _row(name, tokens=result.tokens, seconds=result.train_seconds, cpu=result.cpu_seconds,
                threads=result.threads, rss=rss, steps=result.global_step, mean_loss=result.train_loss,
                final_loss=result.final_loss)


def run_trl(records, instances, model, tokenizer, cfg: TrainConfig) -> dict:
    """TRL's SFTTrainer, padding-free with an assistant-only loss, on the same conversations."""
    dataset = react_conversations(records, instances)
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as out, RssPeak() as rss:
        result = sft_train(dataset, model=copy.deepcopy(model), tokenizer=tokenizer, out_dir=out, config=cfg)
    return _row("trl", tokens=result.tokens, seconds=result.train_seconds, cpu=result.cpu_seconds,
                threads=torch.get_num_threads(), rss=rss, steps=result.global_step, mean_loss=result.train_loss,
                final_loss=result.final_loss)


def _args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="a corpus directory (default: runs/cpu/simulation, else synthetic)")
    ap.add_argument("--n", type=int, default=8, help="training instances (one epoch over them per recipe)")
    ap.add_argument("--pad-to", type=int, default=1024, help="the pad recipe's fixed length (the paper: 2048)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared machine, 2 threads stall on each other "
                         "and the many small ops of our recipe suffer most)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def _config(args) -> TrainConfig:
    """The cpu profile's LoRA; one optimizer step per batch so every recipe takes the same steps."""
    return TrainConfig(lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_last_layers=8, learning_rate=1e-3,
                       epochs=1, per_device_batch_size=args.batch, grad_accum=1, max_length=args.pad_to,
                       seed=args.seed, eval_fraction=0.0, warmup=0, save_steps=10_000, num_threads=args.threads,
                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def _table(rows: dict[str, dict]) -> None:
    print(f"\n{'recipe':<6} {'non-pad tok':>11} {'s/epoch':>8} {'tok/s':>8} {'tok/s (cpu time)':>17} "
          f"{'peak RSS GB':>12} {'mean loss':>10} {'final loss':>10}")
    for name, r in rows.items():
        print(f"{name:<6} {r['non_pad_tokens']:>11} {r['seconds_per_epoch']:>8} {r['tokens_per_s']:>8} "
              f"{str(r['tokens_per_s_cpu_time']):>17} {r['peak_rss_gb']:>12} {str(r['mean_loss']):>10} "
              f"{str(r['final_loss']):>10}")


def _ratio(a: dict, b: dict, key: str) -> float | None:
    return round(a[key] / b[key], 2) if a[key] and b[key] else None


def main() -> dict:
    args = _args()
    torch.set_num_threads(args.threads)
    wall0 = time.perf_counter()

    from toolalpaca_utils.llm.hf import load_model_and_tokenizer

    records, instances, data_note = pick_data(args.corpus, args.n, args.seed)
    model, tokenizer = load_model_and_tokenizer(device="cpu", dtype=torch.float32)
    model = plain_weights(model)
    kept = fitting(records, instances, tokenizer, args.pad_to)
    data_note += f"; {len(kept)} of {len(instances)} fit in {args.pad_to} tokens and are used"
    instances = kept
    cfg = _config(args)
    print(f"data: {data_note}", flush=True)
    # warm-up (kernel selection, allocator), so that no recipe pays it
    run_recipe("warm-up", records, instances[:1], model, tokenizer, cfg, max_steps=1)
    rows = {"ours": run_recipe("ours", records, instances, model, tokenizer, cfg)}
    print("ours:", rows["ours"], flush=True)
    rows["trl"] = run_trl(records, instances, model, tokenizer, cfg)
    print("trl:", rows["trl"], flush=True)
    pad_cfg = TrainConfig(**{**cfg.to_dict(), "group_by_length": False, "label_positions_only": False,
                             "share_prefix": False})
    rows["pad"] = run_recipe("pad", records, instances, model, tokenizer, pad_cfg, pad_to=args.pad_to)
    print("pad:", rows["pad"], flush=True)
    out = _report(args, cfg, data_note, instances, rows, wall0)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training_throughput.json").write_text(json.dumps(out, indent=1))
    return out


def _report(args, cfg: TrainConfig, data_note: str, instances: list, rows: dict, wall0: float) -> dict:
    """The JSON of the run (the Performance page reads its ``summary``), and the printed table."""
    ours, trl, pad = rows["ours"], rows["trl"], rows["pad"]
    ratio, ratio_cpu = _ratio(ours, trl, "tokens_per_s"), _ratio(ours, trl, "tokens_per_s_cpu_time")
    out = {
        "benchmark": "training_throughput", "data": data_note, "n_instances": len(instances),
        "model": "smollm2-135m-instruct (GGUF dequantised to fp32)",
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "last_layers": cfg.lora_last_layers,
                 "target_modules": list(cfg.target_modules)},
        "batch_size": args.batch, "threads": args.threads, "epochs": 1,
        "recipes": {
            "ours": {"padding": "to the longest in the batch",
                     "batches": "one tool per batch where possible, similar lengths",
                     "shared_prefix": "system turn (tool documentation) computed once per batch",
                     "logits": "loss-bearing positions only", **ours},
            "trl": {"trainer": "trl.SFTTrainer", "padding": "none (padding_free=True: a batch is one packed row)",
                    "batches": "random", "loss": "assistant_only_loss=True (training chat template)", **trl},
            "pad": {"padding": f"every sequence to {args.pad_to} tokens", "batches": "random",
                    "logits": "every position", **pad},
        },
        "ratio_tokens_per_s": ratio, "ratio_tokens_per_s_cpu_time": ratio_cpu,
        "ratio_vs_pad_tokens_per_s": _ratio(ours, pad, "tokens_per_s"),
        "target": ">= 1.3x over trl at equal loss, else notebook 03 switches to SFTTrainer",
        "wall_seconds_total": round(time.perf_counter() - wall0, 1),
    }
    out["summary"] = benchmark_summary(
        title="training throughput", measure="non-pad tokens/s",
        baseline="TRL SFTTrainer, padding-free, assistant-only loss", baseline_value=trl["tokens_per_s"],
        ours="dynamic padding + grouping + shared prefix", ours_value=ours["tokens_per_s"], target_ratio=1.3,
        note=f"{len(instances)} instances, one epoch each; final loss {ours['final_loss']} vs {trl['final_loss']}; "
             f"peak RSS {ours['peak_rss_gb']} vs {trl['peak_rss_gb']} GB; by CPU time {ratio_cpu}x; "
             f"pad-to-{args.pad_to}: {pad['tokens_per_s']} tok/s")
    _table(rows)
    print(f"ours / trl, non-pad tokens/s: {ratio}x wall-clock, {ratio_cpu}x by CPU time (rule: >= 1.3x at equal "
          f"loss); ours / pad-to-{args.pad_to}: {out['ratio_vs_pad_tokens_per_s']}x")
    return out


if __name__ == "__main__":
    main()
