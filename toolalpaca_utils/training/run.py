"""A profile run, as the notebook and the command line start it: the previous stage's corpus
in, adapter + training log + stage manifest out under ``runs/<profile>/training/``; a finished
run with the same hyper-parameters is reused. Also the notebook's loss-curve plot.
"""
from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..runs import same_settings
from .config import ADAPTER_DIRNAME, LOG_FILENAME, TrainConfig, TrainResult
from .sequences import EmptyCorpusError
from .train import split_heldout, train_lora

STAGE = "training"
NOTEBOOK = "03_training"


def train_config_kwargs(params: dict) -> dict:
    """:class:`TrainConfig` fields (and ``unseen_eval``) from notebook 03's parameters
    (:class:`toolalpaca_utils.params.TrainingParams`): ``student_model`` is the ``base_model``,
    ``max_train_steps`` the optimizer's ``max_steps``; other keys are left out."""
    renamed = {"student_model": "base_model", "max_train_steps": "max_steps"}
    out = {renamed.get(k, k): v for k, v in params.items()}
    return {k: v for k, v in out.items() if k in TrainConfig.__dataclass_fields__ or k == "unseen_eval"}


def profile_parameters(profile: str) -> dict:
    """Notebook 03's training settings under ``profile`` (its defaults, the profile's common and
    03_training sections) as :func:`train_config_kwargs`; for callers that train as 03 does."""
    from ..profiles import load_profile

    return train_config_kwargs(load_profile(profile, NOTEBOOK))


def training_data(profile: str, *, corpus: str | Path | None = None, train_data: str | Path | None = None):
    """The data a run trains on (:class:`toolalpaca_utils.formats.TrainingData`): ``train_data``
    when given (a ToolAlpaca-format instance file, a messages + tools dataset, a chat JSONL, or a
    corpus folder; read through :func:`toolalpaca_utils.formats.read_training_data`), else the
    corpus ``corpus``, else the simulation corpus of ``profile``. No training instance is an error."""
    from ..formats import read_training_data
    from ..runs import require_stage

    if train_data:
        data = read_training_data(train_data)
    else:
        corpus_dir = Path(corpus) if corpus is not None else require_stage(profile, "simulation")
        if not (corpus_dir / "tools.json").is_file():
            raise FileNotFoundError(f"{corpus_dir} is not a corpus directory (no tools.json)")
        data = read_training_data(corpus_dir)
    if not data.splits.get("train"):
        where = data.source / "train.jsonl" if data.fmt == "corpus" else data.source
        raise EmptyCorpusError(f"{where} has no instances: nothing to train on")
    return data


def run_training(profile: str, *, corpus: str | Path | None = None, out: str | Path | None = None,
                 unseen_eval: bool | None = None, resume: bool = True, progress: bool = False,
                 **overrides: Any) -> TrainResult:
    """Train on the simulation corpus of ``profile`` (or ``corpus``, or the ``train_data``
    override in any format, see :func:`training_data`) with the hyper-parameters given
    (:class:`TrainConfig` fields; the caller passes the profile's, see :func:`profile_parameters`;
    the rest are TrainConfig's defaults), write the adapter, log and manifest to
    ``runs/<profile>/training/`` (or ``out``). ``unseen_eval`` also reports the loss on the data's
    eval split (tools never seen in training) at each evaluation."""
    from ..runs import stage_dir, write_manifest

    timings: dict[str, float] = {}
    params = dict(overrides)
    if unseen_eval is None:
        unseen_eval = bool(params.pop("unseen_eval", False))
    params.pop("unseen_eval", None)
    cfg = TrainConfig(**params)
    data = training_data(profile, corpus=corpus, train_data=cfg.train_data)
    records, train = data.records, data.splits["train"]
    eval_sets = None
    if unseen_eval:
        fit, held = split_heldout(train, cfg.eval_fraction, cfg.seed)
        train = fit
        eval_sets = {"heldout": held, "unseen": data.splits.get("eval") or []}
    default_out = stage_dir(profile, STAGE)
    out_dir = Path(out) if out is not None else default_out
    finished = _finished_run(out_dir, cfg) if resume else None
    if finished is not None:  # e.g. trained on several GPUs with `accelerate launch`, now read by the notebook
        return finished
    result = train_lora(records, train, eval_sets, out_dir=out_dir, config=cfg, resume=resume, progress=progress)
    timings["train_seconds"] = result.train_seconds
    timings["wall_seconds"] = result.wall_seconds
    if out_dir.resolve() == default_out.resolve() and _is_main_process():
        write_manifest(
            profile, STAGE,
            parameters={**cfg.to_dict(), "unseen_eval": unseen_eval},
            models={"base": cfg.base_model, "adapter": result.adapter_dir},
            seeds={"seed": cfg.seed},
            inputs=_inputs(data),
            counts={"n_examples": result.n_examples, "n_eval_examples": result.n_eval_examples,
                    "n_truncated_examples": result.data["train"]["n_truncated_examples"],
                    "n_truncated_tokens": result.data["train"]["n_truncated_tokens"],
                    "n_dropped": len(result.data["train"]["dropped"]),
                    "tokens": result.tokens, "global_step": result.global_step},
            timings=timings,
            extra={"results": {"final_loss": result.final_loss, "eval_loss": result.eval_loss,
                               "tokens_per_s": result.tokens_per_s, "peak_rss_gb": result.peak_rss_gb,
                               "device": result.device, "resumed_from": result.resumed_from},
                   "data": result.data, "log": LOG_FILENAME, "adapter": ADAPTER_DIRNAME},
        )
    return result


def _inputs(data) -> dict:
    """The manifest's inputs: a corpus's files, or the one file or folder of another format."""
    if data.fmt == "corpus":
        return {"tools": data.source / "tools.json", "train": data.source / "train.jsonl"}
    return {f"train ({data.fmt})": data.source}


def _finished_run(out_dir: Path, cfg: TrainConfig) -> TrainResult | None:
    """The result of a finished run in ``out_dir`` with the same hyper-parameters (thread count
    aside), or None. A finished run is reused rather than resumed: resuming one that ran on a
    different number of GPUs would count epochs differently and train again."""
    log_path = out_dir / LOG_FILENAME
    if not (log_path.is_file() and (out_dir / ADAPTER_DIRNAME / "adapter_config.json").is_file()):
        return None
    try:
        log = json.loads(log_path.read_text())
    except json.JSONDecodeError:
        return None
    # a log written before `train_data` and `prompt_format` existed trained on the corpus, in ReAct
    older = {"train_data": "", "prompt_format": "react"}
    if not same_settings(log.get("config") or {}, cfg.to_dict(), defaults=older, ignore=("num_threads",)):
        return None
    known = {f.name for f in fields(TrainResult)} - {"model"}
    return TrainResult(**{**{k: v for k, v in log.items() if k in known}, "stats_from_previous_run": True})


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# =============================================================================================
# plots (used by the notebook)
# =============================================================================================
def plot_loss_curves(log: dict | TrainResult, ax=None):
    """Training loss per step and held-out loss per evaluation on one axis; returns the figure."""
    import matplotlib.pyplot as plt

    log = log.to_dict() if isinstance(log, TrainResult) else log
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    steps = log.get("steps") or []
    ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], marker=".", label="training loss")
    sets = sorted({e["set"] for e in log.get("evals") or []})
    for name in sets:
        pts = [e for e in log["evals"] if e["set"] == name]
        label = {"heldout": "held-out", "unseen": "unseen tools"}.get(name, name)
        ax.plot([e["step"] for e in pts], [e["eval_loss"] for e in pts], marker="o", linestyle="--",
                label=f"{label} loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (assistant tokens)")
    ax.set_title("LoRA fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
