"""GPU training check: the project's own trainer runs the ``gpu`` profile's training settings
on CUDA, measured, with TRL's ``SFTTrainer`` on the same data, LoRA and steps beside it.

What it proves (on the machine it runs on, printed and written to ``<out>/gpu_train_check.json``):

* ``toolalpaca_utils.training.run.run_training`` -- the entry notebook 03 and the command line
  use -- trains with the settings of ``notebooks/profiles/gpu.yaml`` section ``03_training``
  (bf16, gradient checkpointing, ``attn_implementation: sdpa``, LoRA r16 / alpha 32 on every
  layer and all seven projections, batch 8 x grad-accum 4, max_length 2048, the held-out and
  unseen-tool evaluation) on CUDA, for a small ``--steps`` instead of 3 epochs;
* the settings are really in force, read off the model the trainer gets and off the run: the
  dtype of the base and of the trainable (LoRA) weights, the decoder layers that have gradient
  checkpointing on, the attention implementation, and the calls of
  ``torch.nn.functional.scaled_dot_product_attention`` per optimizer step (layers x micro-batches,
  doubled when checkpointing recomputes the forward in the backward pass);
* figures: optimizer steps, non-pad tokens/s (whole run and steady state, steps after the
  first few), peak GPU memory (``torch.cuda.max_memory_allocated``), first and last loss, the
  adapter files written. The same figures for ``toolalpaca_utils.training.reference.sft_train``
  (TRL ``SFTTrainer``, padding-free, assistant-only loss) on the same training instances that fit
  in ``max_length`` (padding-free training does not truncate), unless ``--no-trl`` or TRL fails
  (the error is recorded, the project's figures are kept).

The model is the SmolLM2-135M architecture with RANDOM weights (``AutoModelForCausalLM.from_config``
on the embedded model's config, the real tokenizer): nothing is downloaded. Losses therefore start
near ln(49152) = 10.8; they show that the optimizer learns, not what the real model would reach.
The project's code is not changed: its ``training.train._train`` and ``trl.SFTTrainer`` are wrapped
in this process only, to read the model and add a step probe (a ``TrainerCallback``).

Two steps, run from the repository root:

1. here (CPU, the project's venv): write the tokenizer + config of the embedded model and the
   corpus files into the git-ignored folder ``.gpu_check/``::

       .venv/bin/python scripts/gpu_train_check.py prepare --corpus runs/cpu/simulation

   optional CPU dry run of the whole path (tiny settings, a minute or two)::

       OMP_NUM_THREADS=1 .venv/bin/python scripts/gpu_train_check.py run --out /tmp/gpucheck \\
           --steps 2 --fp32 --batch 1 --grad-accum 1 --max-length 512 --no-eval --skip-steps 1

2. on the GPU machine (wheels of the packages it lacks in ``.whl/``, see
   benchmarks/results/gpu_train_check.md)::

       python3 scripts/gpu_train_check.py run --out $OUT --steps 30 --require-cuda

   Measured on an H200: benchmarks/results/gpu_train_check.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
for _k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_k, "1")   # the GPU machine has no network: fail fast, never wait on it
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_DIR = REPO / ".gpu_check"
CORPUS_FILES = ("tools.json", "train.jsonl", "eval.jsonl")


def log(*a):
    print("[gpu_train_check]", *a, flush=True)


# ============================================================================== prepare (here)
def prepare(args) -> None:
    """The embedded model's tokenizer and config, loaded the way the project loads them
    (``toolalpaca_utils.llm.hf.hf_checkpoint``), saved with ``save_pretrained``; the corpus files."""
    from transformers import AutoConfig, AutoTokenizer

    from toolalpaca_utils.llm.hf import hf_checkpoint

    src = hf_checkpoint(args.model)
    out = Path(args.model_files)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    AutoConfig.from_pretrained(src).save_pretrained(out)
    log(f"model files of {args.model} ({src}) -> {out}: {sorted(p.name for p in out.iterdir())}")
    corpus_out = Path(args.corpus_out)
    corpus_out.mkdir(parents=True, exist_ok=True)
    for name in CORPUS_FILES:
        shutil.copy2(Path(args.corpus) / name, corpus_out / name)
    log(f"corpus {args.corpus} -> {corpus_out}: {list(CORPUS_FILES)}")


# ============================================================================== probes
class SdpaCounter:
    """Counts calls of ``torch.nn.functional.scaled_dot_product_attention`` (transformers' sdpa
    attention looks it up at each call) and notes the first call's inputs."""

    def __init__(self):
        import torch.nn.functional as F

        self.F, self.orig, self.calls, self.first = F, F.scaled_dot_product_attention, 0, None

        def counted(q, k, v, *a, **kw):
            self.calls += 1
            if self.first is None:
                mask = kw.get("attn_mask", a[0] if a else None)
                self.first = {"q_dtype": str(q.dtype), "q_shape": list(q.shape), "device": str(q.device),
                              "attn_mask": None if mask is None else f"{mask.dtype} {list(mask.shape)}",
                              "is_causal": kw.get("is_causal"), "enable_gqa": kw.get("enable_gqa")}
            return self.orig(q, k, v, *a, **kw)

        F.scaled_dot_product_attention = counted

    def remove(self):
        self.F.scaled_dot_product_attention = self.orig


def make_probe(sdpa: SdpaCounter, rec: list, log_list: list):
    """A TrainerCallback recording, at each optimizer step: wall time (after a CUDA sync), tokens
    seen, sdpa calls so far, peak GPU memory; and each logged dict."""
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.t0, self.c0 = time.perf_counter(), sdpa.calls
            rec.append({"step": 0, "t": 0.0, "tokens": int(state.num_input_tokens_seen or 0), "sdpa": 0,
                        "max_alloc_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3) if cuda else None})

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            rec.append({"step": state.global_step, "t": round(time.perf_counter() - self.t0, 4),
                        "tokens": int(state.num_input_tokens_seen or 0), "sdpa": sdpa.calls - self.c0,
                        "max_alloc_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3) if cuda else None})

        def on_log(self, args, state, control, logs=None, **kw):
            log_list.append({**(logs or {}), "_step": state.global_step})

    return Probe()


def describe(model, targs) -> dict:
    """What the trainer actually got: dtypes, LoRA coverage, checkpointing, attention."""
    import re

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = [(n, p) for n, p in model.named_parameters() if not p.requires_grad]
    layers = sorted({int(m.group(1)) for n, _ in trainable if (m := re.search(r"\.layers\.(\d+)\.", n))})
    targets = sorted({m.group(1) for n, _ in trainable if (m := re.search(r"\.(\w+_proj)\.lora_", n))})
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    gc_layers = [m for m in base.modules() if type(m).__name__.endswith("DecoderLayer")]
    return {
        "model_class": type(base).__name__,
        "num_hidden_layers": int(base.config.num_hidden_layers),
        "base_weight_dtypes": sorted({str(p.dtype) for _, p in frozen}),
        "trainable_dtypes": sorted({str(p.dtype) for _, p in trainable}),
        "trainable_params": sum(p.numel() for _, p in trainable),
        "total_params": sum(p.numel() for _, p in model.named_parameters()),
        "lora_layers": f"{len(layers)} ({layers[0]}..{layers[-1]})" if layers else "none",
        "lora_targets": targets,
        "lora_r": sorted({int(c.r) for c in [model.peft_config["default"]]}) if hasattr(model, "peft_config") else None,
        "grad_ckpt_layers": sum(bool(getattr(m, "gradient_checkpointing", False)) for m in gc_layers),
        "decoder_layers": len(gc_layers),
        "attn_implementation": getattr(base.config, "_attn_implementation", None),
        "use_cache": getattr(base.config, "use_cache", None),
        "args_bf16": bool(getattr(targs, "bf16", False)),
        "args_gradient_checkpointing": bool(getattr(targs, "gradient_checkpointing", False)),
    }


def step_figures(rec: list, skip: int) -> dict:
    """Tokens/s and sdpa calls per step over the steps after ``skip`` (steady state)."""
    steps = [r for r in rec if r["step"] > 0]
    if len(steps) < 2:
        return {}
    skip = min(skip, len(steps) - 1)
    a, b = (rec[0] if skip == 0 else steps[skip - 1]), steps[-1]
    dt, dtok = b["t"] - a["t"], b["tokens"] - a["tokens"]
    per_step = [y["sdpa"] - x["sdpa"] for x, y in zip(steps, steps[1:])]
    return {"steady_from_step": a["step"], "steady_to_step": b["step"], "steady_seconds": round(dt, 3),
            "steady_tokens": dtok, "steady_tokens_per_s": round(dtok / dt, 1) if dt > 0 and dtok else None,
            "first_step_seconds": steps[0]["t"],
            "sdpa_calls_per_step": sorted(set(per_step)) or [steps[0]["sdpa"]],
            "sdpa_calls_first_step": steps[0]["sdpa"]}


def adapter_files(d: Path) -> dict:
    return {p.name: p.stat().st_size for p in sorted(Path(d).iterdir())} if Path(d).is_dir() else {}


# ============================================================================== run (the GPU)
def build_random_model(model_files: Path, dest: Path, seed: int) -> Path:
    """A model directory: the SmolLM2-135M config with random weights, and the real tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model_files)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(model_files).save_pretrained(dest)
    n = sum(p.numel() for p in model.parameters())
    del model
    log(f"random-weight {config.model_type} model ({n / 1e6:.1f}M parameters) -> {dest}")
    return dest


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(device_name=torch.cuda.get_device_name(0), capability=f"{p.major}.{p.minor}",
                   gpu_memory_gb=round(p.total_memory / 1e9, 1), bf16_supported=torch.cuda.is_bf16_supported())
    for name in ("transformers", "peft", "accelerate", "datasets", "trl", "tokenizers", "huggingface_hub"):
        try:
            mod = __import__(name)
            env[name] = f"{mod.__version__} ({Path(mod.__file__).parent.parent})"
        except Exception as exc:  # noqa: BLE001 - reported, not fatal here
            env[name] = f"unavailable: {type(exc).__name__}: {exc}"
    return env


def run(args) -> dict:
    import torch

    import toolalpaca_utils.training.train as T
    from toolalpaca_utils.training.config import TrainConfig
    from toolalpaca_utils.training.run import profile_parameters, run_training, training_data

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"command": " ".join(sys.argv), "env": environment()}
    for k, v in report["env"].items():
        log(f"{k}: {v}")
    cuda = torch.cuda.is_available()
    if args.require_cuda and not cuda:
        raise SystemExit("no CUDA device (--require-cuda)")

    work = Path(tempfile.mkdtemp(prefix="gpu_train_check-"))
    t = time.perf_counter()
    base_dir = build_random_model(Path(args.model_files), work / "smollm2-135m-random", args.seed)
    report["build_model_seconds"] = round(time.perf_counter() - t, 1)

    # the gpu profile's notebook-03 settings, as the notebook reads them; the student swapped for
    # the random-weight directory and the run cut to --steps optimizer steps
    params = profile_parameters(args.profile)
    report["profile_03_training"] = dict(params)
    params.update(base_model=str(base_dir), max_steps=args.steps, seed=args.seed)
    if args.fp32:
        params["bf16"] = False
    for key, val in (("per_device_batch_size", args.batch), ("grad_accum", args.grad_accum),
                     ("max_length", args.max_length)):
        if val:
            params[key] = val
    if args.no_eval:
        params.update(unseen_eval=False, eval_fraction=0.0)
    report["settings_used"] = dict(params)
    log("settings:", json.dumps(params))

    sdpa = SdpaCounter()
    # ---------------------------------------------------------------- the project's trainer
    proj_rec, proj_logs, seen = [], [], {}
    orig_train = T._train

    def observed_train(peft_model, tokenizer, targs, data, cfg, ckpt_dir, **kw):
        seen["model"] = describe(peft_model, targs)
        seen["n_train_examples"] = data.n_examples
        kw["callbacks"] = [make_probe(sdpa, proj_rec, proj_logs), *(kw.get("callbacks") or [])]
        return orig_train(peft_model, tokenizer, targs, data, cfg, ckpt_dir, **kw)

    T._train = observed_train
    proj: dict = {"trainer": "toolalpaca_utils.training.run.run_training (train_lora, HF Trainer)"}
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        t = time.perf_counter()
        res = run_training(args.profile, corpus=args.corpus, out=work / "project", resume=False,
                           progress=True, **params)
        proj.update(
            wall_seconds=round(time.perf_counter() - t, 2), device=res.device, global_step=res.global_step,
            n_examples=res.n_examples, n_eval_examples=res.n_eval_examples,
            n_truncated_examples=res.data["train"].get("n_truncated_examples"),
            tokens=res.tokens, train_seconds=res.train_seconds, tokens_per_s=res.tokens_per_s,
            peak_gpu_gb=res.peak_gpu_gb,
            peak_gpu_reserved_gb=round(torch.cuda.max_memory_reserved() / 1e9, 3) if cuda else None,
            first_loss=res.steps[0]["loss"] if res.steps else None,
            last_loss=res.steps[-1]["loss"] if res.steps else None,
            final_loss_mean_last3=res.final_loss, train_loss=res.train_loss,
            losses=[s["loss"] for s in res.steps], evals=res.evals,
            adapter_dir=res.adapter_dir, adapter_files=adapter_files(Path(res.adapter_dir)),
            model=seen.get("model"), steps=proj_rec, **step_figures(proj_rec, args.skip_steps))
        del res
    except Exception as exc:  # noqa: BLE001 - recorded in the report
        proj["error"] = f"{type(exc).__name__}: {exc}"
        proj["traceback"] = traceback.format_exc()
        proj["model"] = seen.get("model")
        log("project trainer FAILED:\n" + proj["traceback"])
    finally:
        T._train = orig_train
    report["project"] = proj
    proj_first_sdpa = sdpa.first
    report["sdpa_first_call"] = proj_first_sdpa
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()

    # ---------------------------------------------------------------- TRL SFTTrainer baseline
    ref: dict = {"trainer": "toolalpaca_utils.training.reference.sft_train (trl.SFTTrainer, padding_free, "
                            "assistant_only_loss)"}
    if args.no_trl:
        ref["skipped"] = "--no-trl"
    else:
        try:
            ref.update(run_trl(args, params, base_dir, work, sdpa, TrainConfig, training_data))
        except Exception as exc:  # noqa: BLE001 - recorded in the report
            ref["error"] = f"{type(exc).__name__}: {exc}"
            ref["traceback"] = traceback.format_exc()
            log("TRL baseline FAILED:\n" + ref["traceback"])
    report["trl"] = ref
    sdpa.remove()

    if "tokens_per_s" in proj and ref.get("tokens_per_s"):
        report["ratio_tokens_per_s_project_over_trl"] = round(proj["tokens_per_s"] / ref["tokens_per_s"], 3)
        if proj.get("steady_tokens_per_s") and ref.get("steady_tokens_per_s"):
            report["ratio_steady_tokens_per_s_project_over_trl"] = round(
                proj["steady_tokens_per_s"] / ref["steady_tokens_per_s"], 3)
    (out / "gpu_train_check.json").write_text(json.dumps(report, indent=1, default=str))
    summary(report)
    shutil.rmtree(work, ignore_errors=True)
    return report


def run_trl(args, params, base_dir, work, sdpa, TrainConfig, training_data) -> dict:
    import torch
    import trl

    from toolalpaca_utils.training import build_example, react_conversations, split_heldout
    from toolalpaca_utils.training.reference import sft_train
    from toolalpaca_utils.training.weights import _load_base

    cuda = torch.cuda.is_available()
    cfg = TrainConfig(**{k: v for k, v in params.items() if k != "unseen_eval"})
    data = training_data(args.profile, corpus=args.corpus)
    fit, _held = split_heldout(data.splits["train"], cfg.eval_fraction, cfg.seed)  # the project's training set
    device = "cuda" if cuda else "cpu"
    model, tok = _load_base(cfg.base_model, device, bf16=cfg.bf16, attn_implementation=cfg.attn_implementation)
    lengths = [build_example(tok, data.records[i["tool"]], i, 1 << 20)["length"] for i in fit]
    fitting = [i for i, n in zip(fit, lengths) if n <= cfg.max_length]
    dataset = react_conversations(data.records, fitting)
    log(f"TRL: {len(fitting)} of {len(fit)} training instances fit in {cfg.max_length} tokens "
        f"(lengths {min(lengths)}..{max(lengths)}, mean {sum(lengths) / len(lengths):.0f})")

    rec, logs, seen = [], [], {}
    probe = make_probe(sdpa, rec, logs)
    orig = trl.SFTTrainer

    class ProbedSFTTrainer(orig):
        def __init__(self, *a, **kw):
            kw["callbacks"] = [probe, *(kw.get("callbacks") or [])]
            super().__init__(*a, **kw)
            seen["model"] = describe(self.model, self.args)

    trl.SFTTrainer = ProbedSFTTrainer
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        t = time.perf_counter()
        res = sft_train(dataset, model=model, tokenizer=tok, out_dir=work / "trl", config=cfg)
        wall = time.perf_counter() - t
    finally:
        trl.SFTTrainer = orig
    # TRL logs its own token count ("num_tokens": every token, the batch being padding-free);
    # the probe's per-step token column is refilled from it where the Trainer's counter is off
    by_step = {lg["_step"]: lg["num_tokens"] for lg in logs if "num_tokens" in lg}
    for r in rec:
        if not r["tokens"] and r["step"] in by_step:
            r["tokens"] = int(by_step[r["step"]])
    return dict(
        wall_seconds=round(wall, 2), global_step=res.global_step, n_examples=len(fitting),
        n_left_out_too_long=len(fit) - len(fitting), tokens=res.tokens, train_seconds=round(res.train_seconds, 3),
        tokens_per_s=res.tokens_per_s,
        peak_gpu_gb=round(torch.cuda.max_memory_allocated() / 1e9, 3) if cuda else None,
        peak_gpu_reserved_gb=round(torch.cuda.max_memory_reserved() / 1e9, 3) if cuda else None,
        first_loss=res.losses[0] if res.losses else None, last_loss=res.losses[-1] if res.losses else None,
        final_loss_mean_last3=res.final_loss, train_loss=res.train_loss, losses=res.losses,
        adapter_dir=res.adapter_dir, adapter_files=adapter_files(Path(res.adapter_dir)),
        model=seen.get("model"), steps=rec, **step_figures(rec, args.skip_steps))


def summary(report: dict) -> None:
    env = report["env"]
    log(f"device: {env.get('device_name', 'cpu')}  torch {env['torch']} (CUDA {env['torch_cuda']})  "
        f"transformers {env.get('transformers')}  peft {env.get('peft')}  trl {env.get('trl')}")
    keys = ["global_step", "tokens", "train_seconds", "tokens_per_s", "steady_tokens_per_s", "first_step_seconds",
            "peak_gpu_gb", "peak_gpu_reserved_gb", "first_loss", "last_loss", "final_loss_mean_last3",
            "sdpa_calls_per_step", "n_examples"]
    rows = {"project": report["project"], "trl": report["trl"]}
    log(f"{'figure':28s} {'project':>24s} {'trl':>24s}")
    for k in keys:
        log(f"{k:28s} {str(rows['project'].get(k)):>24s} {str(rows['trl'].get(k)):>24s}")
    for name, row in rows.items():
        m = row.get("model") or {}
        log(f"{name}: base {m.get('base_weight_dtypes')} trainable {m.get('trainable_dtypes')} "
            f"({m.get('trainable_params')} params), LoRA layers {m.get('lora_layers')} targets {m.get('lora_targets')}, "
            f"grad-ckpt layers {m.get('grad_ckpt_layers')}/{m.get('decoder_layers')}, attn {m.get('attn_implementation')}")
        log(f"{name}: adapter files {row.get('adapter_files')}")
        for k in ("error", "skipped"):
            if row.get(k):
                log(f"{name}: {k}: {row[k]}")
    log(f"first sdpa call: {report.get('sdpa_first_call')}")
    for k in ("ratio_tokens_per_s_project_over_trl", "ratio_steady_tokens_per_s_project_over_trl"):
        if k in report:
            log(f"{k}: {report[k]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write .gpu_check/model_files and .gpu_check/corpus (here, CPU)")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--corpus", default=str(REPO / "runs" / "cpu" / "simulation"))
    p.add_argument("--model-files", default=str(DEFAULT_DIR / "model_files"))
    p.add_argument("--corpus-out", default=str(DEFAULT_DIR / "corpus"))
    r = sub.add_parser("run", help="train and measure (the GPU machine)")
    r.add_argument("--out", default=os.environ.get("OUT", "gpu_train_check_out"))
    r.add_argument("--profile", default="gpu")
    r.add_argument("--model-files", default=str(DEFAULT_DIR / "model_files"))
    r.add_argument("--corpus", default=str(DEFAULT_DIR / "corpus"))
    r.add_argument("--steps", type=int, default=30)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--skip-steps", type=int, default=3, help="steps left out of the steady-state tokens/s")
    r.add_argument("--fp32", action="store_true", help="bf16 off (CPU dry run)")
    r.add_argument("--batch", type=int, default=0, help="override per_device_batch_size (dry run)")
    r.add_argument("--grad-accum", type=int, default=0, help="override grad_accum (dry run)")
    r.add_argument("--max-length", type=int, default=0, help="override max_length (dry run)")
    r.add_argument("--no-eval", action="store_true", help="no held-out/unseen evaluation (dry run)")
    r.add_argument("--no-trl", action="store_true", help="skip the TRL baseline")
    r.add_argument("--require-cuda", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args)
        return 0
    report = run(args)
    failed = "error" in report["project"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
