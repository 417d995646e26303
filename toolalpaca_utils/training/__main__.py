"""Stage 3 from the command line: fine-tune the student with LoRA on the simulated corpus.

The options are notebook 03's parameters (:class:`toolalpaca_utils.params.TrainingParams`, with
the profile's values as defaults) plus where to write; the same code runs under
``accelerate launch`` on a GPU box::

    python -m toolalpaca_utils.training --profile cpu [--corpus_dir DIR] [--out DIR] [--epochs 2 ...]
    python -m toolalpaca_utils.training --profile tiny --train_data toolalpaca_train.json --out DIR
    accelerate launch --config_file configs/accelerate/ddp.yaml -m toolalpaca_utils.training --profile gpu
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..params import parse_stage_args
from .run import COMMAND_LINE, NOTEBOOK, _is_main_process, run_training, train_config_kwargs


@dataclass
class RunArgs:
    out: Optional[str] = field(default=None, metadata={"help": "output directory (default: runs/<profile>/training)"})
    no_resume: bool = field(default=False, metadata={"help": "start over even if a checkpoint exists"})


def main(argv: Sequence[str] | None = None) -> int:
    params, run = parse_stage_args(NOTEBOOK, argv, extra=(RunArgs,))
    hyper = train_config_kwargs(dataclasses.asdict(params))
    unseen_eval = hyper.pop("unseen_eval")
    result = run_training(params.profile, corpus=params.corpus_dir or None, out=run.out, unseen_eval=unseen_eval,
                          resume=not run.no_resume, progress=True, launcher=COMMAND_LINE, **hyper)
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
