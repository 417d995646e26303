"""Stage 3: fine-tune the student with LoRA on the simulated corpus.

The command line of a profile run (:func:`toolalpaca_utils.training.run_training`); the same code
runs under ``accelerate launch`` on a GPU box::

    python -m toolalpaca_utils.training --profile cpu [--corpus DIR] [--out DIR] [--epochs 2 ...]
    accelerate launch -m toolalpaca_utils.training --profile gpu
"""
from __future__ import annotations

import argparse
import json
from typing import Sequence

from .config import TrainConfig
from .run import _is_main_process, run_training


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m toolalpaca_utils.training", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", help="run profile: tiny | cpu | gpu (default: cpu)")
    p.add_argument("--corpus", default=None, help="corpus directory (default: runs/<profile>/simulation)")
    p.add_argument("--out", default=None, help="output directory (default: runs/<profile>/training)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--unseen-eval", action="store_true", default=None,
                   help="also report the loss on the corpus eval split (unseen tools)")
    p.add_argument("--base-model", dest="base_model", default=None)
    for name in ("lora_r", "lora_alpha", "lora_last_layers", "max_steps", "per_device_batch_size", "grad_accum",
                 "max_length", "seed", "logging_steps", "save_steps", "eval_steps", "num_threads"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=None)
    for name in ("lora_dropout", "learning_rate", "epochs", "eval_fraction", "warmup", "weight_decay"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=float, default=None)
    p.add_argument("--target-modules", dest="target_modules", default=None,
                   help="comma-separated module names, e.g. q_proj,v_proj")
    p.add_argument("--gradient-checkpointing", dest="gradient_checkpointing", action="store_true", default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = _parse_args(argv)
    overrides = {k: v for k, v in vars(a).items()
                 if k in TrainConfig.__dataclass_fields__ and v is not None}
    if isinstance(overrides.get("target_modules"), str):
        overrides["target_modules"] = [m.strip() for m in overrides["target_modules"].split(",") if m.strip()]
    result = run_training(a.profile, corpus=a.corpus, out=a.out, unseen_eval=a.unseen_eval,
                          resume=not a.no_resume, progress=True, **overrides)
    if _is_main_process():
        print(json.dumps({
            "adapter": result.adapter_dir, "examples": result.n_examples, "steps": result.global_step,
            "final_loss": result.final_loss, "eval_loss": result.eval_loss,
            "tokens_per_s": result.tokens_per_s, "minutes": round(result.minutes, 2),
            "peak_rss_gb": result.peak_rss_gb, "device": result.device,
        }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
