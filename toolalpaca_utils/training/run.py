"""A profile run, as the notebook and the command line start it: the previous stage's corpus
in, adapter + training log + stage manifest out under ``runs/<profile>/training/``; a finished
run with the same hyper-parameters is reused. Also the notebook's loss-curve plot.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..runs import fingerprint, hash_path, plain, replace_text
from .config import ADAPTER_DIRNAME, CHECKPOINTS_DIRNAME, LOG_FILENAME, TrainConfig, TrainResult
from .sequences import EmptyCorpusError
from .train import split_heldout, train_lora

STAGE = "training"
DATA_MARKER = "training_data.json"  # what the folder's checkpoints and adapter come from: data sha256, settings
NOTEBOOK = "03_training"
LAUNCH_FILENAME = "launch.json"
IN_PROCESS, COMMAND_LINE = "in-process", "command line"   # who trained a run (launch.json "by")
IGNORED_SETTINGS = ("num_threads",)                      # does not change what is trained


class FinishedRunDiffersError(ValueError):
    """The run folder holds a finished command-line run (e.g. ``accelerate launch``) whose
    settings differ from the caller's: reusing it would be wrong, overwriting it a silent loss."""


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


def heldout_instances(corpus_dir: str | Path, profile: str = "cpu") -> list[dict]:
    """The training instances notebook 03 holds out under ``profile`` (its ``eval_fraction`` and
    ``seed``): the development set that benchmarks choose levers on, never the evaluation sets."""
    from ..corpus import load_split

    params = profile_parameters(profile)
    return split_heldout(load_split(corpus_dir, "train"), params["eval_fraction"], params["seed"])[1]


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
                 launcher: str = IN_PROCESS, **overrides: Any) -> TrainResult:
    """Train on the simulation corpus of ``profile`` (or ``corpus``, or the ``train_data``
    override in any format, see :func:`training_data`) with the hyper-parameters given
    (:class:`TrainConfig` fields; the caller passes the profile's, see :func:`profile_parameters`;
    the rest are TrainConfig's defaults), write the adapter, log and manifest to
    ``runs/<profile>/training/`` (or ``out``). ``unseen_eval`` also reports the loss on the data's
    eval split (tools never seen in training) at each evaluation.

    With ``resume``, a finished run in the folder is reused when its settings are these; one with
    other settings is trained over from the start, except that a run made from the command line
    (``launcher``, :data:`COMMAND_LINE`, e.g. ``accelerate launch`` on several GPUs) is never
    overwritten by an in-process call: :class:`FinishedRunDiffersError` names the keys."""
    from ..runs import stage_dir

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
    data_hash = _data_hash(data)
    if resume:
        finished, resume = _reuse_finished_run(out_dir, cfg, launcher, data_hash)
        if finished is not None:  # e.g. trained on several GPUs with `accelerate launch`, now read by the notebook
            return finished
    out_dir.mkdir(parents=True, exist_ok=True)
    _begin_run(out_dir, data_hash, cfg, resume=resume)
    result = train_lora(records, train, eval_sets, out_dir=out_dir, config=cfg, resume=resume, progress=progress)
    launch = _record_launch(out_dir, launcher)
    if out_dir.resolve() == default_out.resolve() and _is_main_process():
        _write_manifest(profile, cfg, unseen_eval, data, result, launch)
    return result


def _write_manifest(profile: str, cfg: TrainConfig, unseen_eval: bool, data, result: TrainResult,
                    launch: dict) -> None:
    """The stage manifest of a run in the profile's own training folder."""
    from ..runs import write_manifest

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
        timings={"train_seconds": result.train_seconds, "wall_seconds": result.wall_seconds},
        extra={"results": {"final_loss": result.final_loss, "eval_loss": result.eval_loss,
                           "tokens_per_s": result.tokens_per_s, "peak_rss_gb": result.peak_rss_gb,
                           "device": result.device, "resumed_from": result.resumed_from},
               "data": result.data, "log": LOG_FILENAME, "adapter": ADAPTER_DIRNAME, "launch": launch},
    )


def _reuse_finished_run(out_dir: Path, cfg: TrainConfig, launcher: str,
                        data_hash: str) -> tuple[TrainResult | None, bool]:
    """(the finished run to reuse or None, whether training may resume from checkpoints).

    A finished run with other settings or made from other training data (same path, new
    content: a corpus simulated again) is never resumed (its checkpoints were made under those),
    nor is an unfinished one unless its data and settings are these (:func:`_begin_run`). One
    made from the command line, seen from in-process (the notebook after an ``accelerate launch``
    with flags the profile lacks), stops with the differing keys: training here would silently
    retrain on one device and overwrite the adapter."""
    start = _recorded_start(out_dir)
    recorded = start.get("sha256")
    same_data = recorded == data_hash  # no record: data unknown, never reused
    finished = _finished_run(out_dir, cfg) if same_data else None
    if finished is not None:
        return finished, True
    log = _finished_log(out_dir)
    if log is None:  # an unfinished run: its checkpoints carry on only under its data and settings
        return None, same_data and "settings" in start and not settings_diff(start["settings"], cfg)
    diff = settings_diff(log.get("config") or {}, cfg)
    if not same_data:
        diff["training data (sha256)"] = (recorded, data_hash)
    made_by = _read_launch(out_dir)
    if made_by.get("by") == COMMAND_LINE and launcher != COMMAND_LINE:
        raise FinishedRunDiffersError(_differs_message(out_dir, diff, made_by))
    print(f"[training] {out_dir} holds a finished run with other settings ({', '.join(diff)}): "
          "training again from the start, its adapter will be replaced", flush=True)
    return None, False


def settings_diff(recorded: dict, cfg: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """{key: (recorded value, ``cfg``'s value)} for every training setting that differs (thread
    count aside; a key the record predates counts as its TrainConfig default)."""
    was = plain({**TrainConfig().to_dict(), **recorded})
    now = plain(cfg.to_dict())
    return {k: (was.get(k), now[k]) for k in sorted(now) if k not in IGNORED_SETTINGS and was.get(k) != now[k]}


def _differs_message(out_dir: Path, diff: dict, made_by: dict) -> str:
    keys = "; ".join(f"{k}: {was!r} there, {now!r} here" for k, (was, now) in diff.items())
    how = made_by.get("command") or "the command line"
    return (f"{out_dir} holds an adapter trained from the command line ({how}; {made_by.get('world_size', 1)} "
            f"process(es)) with other settings than these: {keys}. Training here would overwrite it on one "
            "device, so nothing was trained. To use that adapter, give the profile's 03_training section the "
            "values it was trained with (then launch with --profile alone, no hyper-parameter flags); to "
            f"replace it, delete {out_dir} or call run_training(..., resume=False).")


def _record_launch(out_dir: Path, launcher: str) -> dict:
    """Write ``launch.json`` (who trained the run in ``out_dir``, on how many processes): what
    :func:`_reuse_finished_run` reads to tell a command-line run from an in-process one."""
    launch = {"by": launcher, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
    if launcher == COMMAND_LINE:
        launch["command"] = " ".join(["python -m toolalpaca_utils.training", *sys.argv[1:]])
    if _is_main_process():
        replace_text(out_dir / LAUNCH_FILENAME, json.dumps(launch, indent=1))
    return launch


def _read_launch(out_dir: Path) -> dict:
    """The launch record of a run ({} for runs written before it existed)."""
    try:
        return json.loads((out_dir / LAUNCH_FILENAME).read_text())
    except (OSError, ValueError):
        return {}


def _finished_log(out_dir: Path) -> dict | None:
    """The training log of a finished run in ``out_dir`` (log and adapter written), or None."""
    log_path = out_dir / LOG_FILENAME
    if not (log_path.is_file() and (out_dir / ADAPTER_DIRNAME / "adapter_config.json").is_file()):
        return None
    try:
        return json.loads(log_path.read_text())
    except json.JSONDecodeError:
        return None


def _data_hash(data) -> str:
    """sha256 over the training data's files (:func:`_inputs`): what an adapter was trained on."""
    return fingerprint({name: hash_path(path) for name, path in _inputs(data).items()})


def _begin_run(out_dir: Path, data_hash: str, cfg: TrainConfig, *, resume: bool) -> None:
    """Record what the folder's checkpoints will be made from, before any is written. A run that
    starts over first removes the checkpoints of the one before: interrupted early, the new run
    must not resume from them (they were made from other data or settings)."""
    if not _is_main_process():
        return
    if not resume:
        shutil.rmtree(out_dir / CHECKPOINTS_DIRNAME, ignore_errors=True)
    replace_text(out_dir / DATA_MARKER, json.dumps({"sha256": data_hash, "settings": plain(cfg.to_dict())}))


def _recorded_start(out_dir: Path) -> dict:
    """What :func:`_begin_run` recorded ({} when nothing readable is there)."""
    try:
        start = json.loads((out_dir / DATA_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return start if isinstance(start, dict) else {}


def _inputs(data) -> dict:
    """The manifest's inputs: a corpus's files, or the one file or folder of another format."""
    if data.fmt == "corpus":
        return {"tools": data.source / "tools.json", "train": data.source / "train.jsonl"}
    return {f"train ({data.fmt})": data.source}


def _finished_run(out_dir: Path, cfg: TrainConfig) -> TrainResult | None:
    """The result of a finished run in ``out_dir`` with the same hyper-parameters (thread count
    aside), or None. A finished run is reused rather than resumed: resuming one that ran on a
    different number of GPUs would count epochs differently and train again."""
    log = _finished_log(out_dir)
    if log is None or settings_diff(log.get("config") or {}, cfg):
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
