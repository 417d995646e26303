"""LoRA fine-tuning: :func:`train_lora` wraps ``peft`` LoRA around the HF ``Trainer`` —
length-grouped batches, gradient accumulation, seeded, held-out loss each epoch, checkpoints
that resume, CPU by default, bf16 autocast on a GPU (or a CPU with bf16 units). It runs in four
steps (build the data, build the arguments, train, summarise) and saves the adapter in the
standard peft format next to the tokenizer and a training log.
"""
from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..llm.hf import bf16_available
from ..runs import cpu_seconds
from .config import ADAPTER_DIRNAME, CHECKPOINTS_DIRNAME, LOG_FILENAME, TrainConfig, TrainResult
from .sequences import BuildReport, DynamicPaddingCollator, EmptyCorpusError, build_examples, to_dataset
from .weights import _load_base, plain_weights


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return round(peak * scale / 1e9, 3)


def split_heldout(instances: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held-out): a seeded ``fraction`` of the instances, at least one when there are
    five or more and ``fraction > 0``; none below that."""
    instances = list(instances)
    if fraction <= 0 or len(instances) < 5:
        return instances, []
    k = max(1, int(round(len(instances) * fraction)))
    order = list(range(len(instances)))
    random.Random(seed).shuffle(order)
    held = set(order[:k])
    return [x for i, x in enumerate(instances) if i not in held], [x for i, x in enumerate(instances) if i in held]


def _lora_layers(cfg: TrainConfig, model) -> list[int] | None:
    if cfg.layers_to_transform is not None:
        return list(cfg.layers_to_transform)
    if cfg.lora_last_layers:
        n = int(model.config.num_hidden_layers)
        return list(range(max(0, n - int(cfg.lora_last_layers)), n))
    return None


def train_lora(
    records: dict | list,
    train_instances: list[dict],
    eval_instances: list[dict] | dict[str, list[dict]] | None = None,
    *,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    resume: bool = True,
    model: Any = None,
    tokenizer: Any = None,
    pad_to: int | None = None,
    callbacks: list | None = None,
    keep_model: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune ``config.base_model`` with LoRA on ``train_instances`` and save the adapter.

    ``eval_instances``: held-out instances for the per-epoch loss — a list, a dict of named
    lists (``{"heldout": …, "unseen": …}``), or ``None`` to hold out ``eval_fraction`` of the
    training instances (same tools, unseen conversations). ``model``/``tokenizer``: an already
    loaded base (it is modified in place; pass a copy). ``overrides`` are TrainConfig fields.
    With ``resume`` the run continues from the last checkpoint under ``out_dir/checkpoints``.
    ``pad_to`` pads every batch to a fixed length (the reference recipe; benchmarks only).
    ``keep_model`` returns the trained PeftModel in ``result.model``; ``progress`` prints each
    logged step (the log file has them either way).
    """
    import torch
    from transformers import set_seed

    t_call = time.perf_counter()
    cfg = _config(config, overrides)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / CHECKPOINTS_DIRNAME
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_instances, eval_sets = _eval_sets(train_instances, eval_instances, cfg)

    set_seed(cfg.seed)
    if model is None or tokenizer is None:
        model, tokenizer = _load_base(cfg.base_model, device, bf16=cfg.bf16,
                                      attn_implementation=cfg.attn_implementation)
    model = plain_weights(model)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    data = _build_data(tokenizer, records, train_instances, eval_sets, cfg)
    peft_model = _with_lora(model, cfg)
    use_bf16 = bf16_available(device) if cfg.bf16 is None else bool(cfg.bf16)
    args = _build_arguments(cfg, ckpt_dir, device=device, use_bf16=use_bf16, evaluate=bool(data.eval_datasets))
    session = _train(peft_model, tokenizer, args, data, cfg, ckpt_dir, resume=resume, pad_to=pad_to,
                     callbacks=callbacks, progress=progress)
    return _summarise(session, data, cfg, tokenizer, out_dir=out_dir, device=device, use_bf16=use_bf16,
                      t_call=t_call, keep_model=keep_model)


def _config(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """``config`` (default TrainConfig()) with ``overrides`` applied; an unknown field is a TypeError."""
    cfg = config or TrainConfig()
    if overrides:
        unknown = set(overrides) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown training parameters: {sorted(unknown)}")
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    return cfg


def _eval_sets(train_instances: list[dict], eval_instances, cfg: TrainConfig) -> tuple[list[dict], dict]:
    """The training instances and the named held-out sets (see :func:`train_lora`); an empty
    training corpus fails here, before a model is loaded."""
    if not train_instances:
        raise EmptyCorpusError("the training corpus is empty: no instances to train on")
    if eval_instances is None:
        train_instances, held = split_heldout(train_instances, cfg.eval_fraction, cfg.seed)
        eval_sets = {"heldout": held} if held else {}
    elif isinstance(eval_instances, dict):
        eval_sets = {k: list(v) for k, v in eval_instances.items() if v}
    else:
        eval_sets = {"heldout": list(eval_instances)} if eval_instances else {}
    return train_instances, eval_sets


# ------------------------------------------------------------------------------ build the data
@dataclass
class TrainingData:
    """The tokenized training set and held-out sets of a run, with their build reports."""

    n_examples: int
    train_report: BuildReport
    train_dataset: Any
    eval_datasets: dict[str, Any]
    eval_reports: dict[str, dict]

    @property
    def eval_dataset(self):
        """What the Trainer evaluates: one set as is, several as a dict (losses named by set)."""
        sets = self.eval_datasets
        return sets if len(sets) > 1 else next(iter(sets.values()), None)


def _build_data(tokenizer, records, train_instances: list[dict], eval_sets: dict, cfg: TrainConfig) -> TrainingData:
    """Examples for the training set (no usable one raises EmptyCorpusError) and for each
    held-out set (one with no usable instance is reported and skipped)."""
    examples, train_report = build_examples(tokenizer, records, train_instances, cfg.max_length,
                                            prompt_format=cfg.prompt_format)
    eval_datasets, eval_reports = {}, {}
    for name, insts in eval_sets.items():
        try:
            ex, rep = build_examples(tokenizer, records, insts, cfg.max_length, what=f"{name} evaluation",
                                     prompt_format=cfg.prompt_format)
        except EmptyCorpusError as exc:
            eval_reports[name] = {"error": str(exc)}
            continue
        eval_datasets[name] = to_dataset(ex)
        eval_reports[name] = rep.to_dict()
    train_ds = to_dataset(examples)
    return TrainingData(n_examples=len(examples), train_report=train_report, train_dataset=train_ds,
                        eval_datasets=eval_datasets, eval_reports=eval_reports)


def _with_lora(model, cfg: TrainConfig):
    """``model`` wrapped in LoRA adapters (gradient checkpointing on when asked, no KV cache)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), layers_to_transform=_lora_layers(cfg, model),
        bias="none", task_type="CAUSAL_LM",
    )
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    return get_peft_model(model, lora)


# ------------------------------------------------------------------------------ build the arguments
def _build_arguments(cfg: TrainConfig, ckpt_dir: Path, *, device: str, use_bf16: bool, evaluate: bool):
    """The HF ``TrainingArguments`` of a run: with ``max_steps`` (or explicit step counts) the
    run checkpoints and evaluates by steps, else once per epoch; no evaluation without a set."""
    from transformers import TrainingArguments

    by_steps = cfg.max_steps and cfg.max_steps > 0
    eval_strategy = "no" if not evaluate else ("steps" if (cfg.eval_steps or by_steps) else "epoch")
    eval_steps = (cfg.eval_steps or (max(1, cfg.max_steps) if by_steps else None)) if evaluate else None
    save_strategy = "steps" if (cfg.save_steps or by_steps) else "epoch"
    save_steps = cfg.save_steps or (max(1, cfg.max_steps) if by_steps else None)
    return TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if by_steps else -1,
        warmup_steps=cfg.warmup,
        lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=use_bf16,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,
        save_only_model=False,
        prediction_loss_only=True,
    )


# ------------------------------------------------------------------------------ train
@dataclass
class TrainSession:
    """What one ``trainer.train`` call leaves behind."""

    trainer: Any
    output: Any                # the Trainer's TrainOutput
    clock: list[dict]          # {"step", "seconds"} of each optimizer step run by this call
    resumed_from: str | None
    cpu_seconds: float         # CPU time of the training loop (all threads)


def _train(peft_model, tokenizer, args, data: TrainingData, cfg: TrainConfig, ckpt_dir: Path, *, resume: bool,
           pad_to: int | None, callbacks: list | None, progress: bool) -> TrainSession:
    """Build the Trainer and run it, from the last checkpoint under ``ckpt_dir`` with ``resume``."""
    from transformers.trainer_utils import get_last_checkpoint

    from .trainer import AssistantLossTrainer, StepClock

    clock: list[dict] = []
    trainer = AssistantLossTrainer(
        model=peft_model,
        args=args,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        data_collator=DynamicPaddingCollator(tokenizer.pad_token_id, pad_to=pad_to),
        processing_class=tokenizer,
        callbacks=[StepClock(clock), *(callbacks or [])],
        label_positions_only=cfg.label_positions_only,
        share_prefix=cfg.share_prefix and not cfg.gradient_checkpointing,
    )
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resumed_from = get_last_checkpoint(str(ckpt_dir)) if (resume and ckpt_dir.is_dir()) else None
    cpu0 = cpu_seconds(children=False)
    output = trainer.train(resume_from_checkpoint=resumed_from)
    return TrainSession(trainer=trainer, output=output, clock=clock, resumed_from=resumed_from,
                        cpu_seconds=cpu_seconds(children=False) - cpu0)


# ------------------------------------------------------------------------------ summarise
def _history(session: TrainSession) -> dict:
    """From the Trainer's log history: logged steps, evaluations (``set`` names the held-out
    set), the last held-out loss, training seconds without evaluations, and non-pad tokens."""
    trainer = session.trainer
    history = trainer.state.log_history
    eval_seconds = sum(h.get(k, 0.0) for h in history for k in h if k.endswith("_runtime") and k.startswith("eval"))
    train_runtime = float(session.output.metrics.get("train_runtime", 0.0))
    tokens = int(trainer.state.num_input_tokens_seen - getattr(trainer, "_initial_num_input_tokens_seen", 0))
    step_time = {c["step"]: c["seconds"] for c in session.clock}
    steps = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"],
              "learning_rate": h.get("learning_rate"), "seconds": step_time.get(h["step"])}
             for h in history if "loss" in h]
    evals = []
    for h in history:
        for k, v in h.items():
            if k == "eval_loss":  # a single evaluation set
                evals.append({"step": h["step"], "epoch": h.get("epoch"), "set": "heldout", "eval_loss": v})
            elif k.startswith("eval_") and k.endswith("_loss"):  # named sets: eval_<name>_loss
                evals.append({"step": h["step"], "epoch": h.get("epoch"), "set": k[5:-5], "eval_loss": v})
    eval_loss = next((e["eval_loss"] for e in reversed(evals) if e["set"] == "heldout"), None)
    if eval_loss is None and evals:
        eval_loss = evals[-1]["eval_loss"]
    return {"steps": steps, "evals": evals, "eval_loss": eval_loss, "tokens": tokens,
            "train_seconds": max(1e-9, train_runtime - eval_seconds)}


def _figures(session: TrainSession, hist: dict, out_dir: Path, t_call: float) -> dict:
    """Throughput figures of this call, or — resumed from the final checkpoint, nothing ran
    now — those of the run that did the work, read from its log."""
    tokens, train_seconds, cpu_train = hist["tokens"], hist["train_seconds"], session.cpu_seconds
    wall = time.perf_counter() - t_call
    tokens_per_s = round(tokens / train_seconds, 2) if tokens else 0.0
    peak = peak_rss_gb()
    previous = out_dir / LOG_FILENAME
    carried = False
    if not session.clock and session.resumed_from and previous.is_file():
        prev = json.loads(previous.read_text())
        tokens, train_seconds, cpu_train = prev["tokens"], prev["train_seconds"], prev["cpu_seconds"]
        wall, tokens_per_s, peak = prev["wall_seconds"], prev["tokens_per_s"], prev["peak_rss_gb"]
        carried = True
    return {"tokens": tokens, "train_seconds": round(train_seconds, 3), "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu_train, 3), "tokens_per_s": tokens_per_s, "peak_rss_gb": peak,
            "stats_from_previous_run": carried}


def _summarise(session: TrainSession, data: TrainingData, cfg: TrainConfig, tokenizer, *, out_dir: Path,
               device: str, use_bf16: bool, t_call: float, keep_model: bool) -> TrainResult:
    """Save the adapter and tokenizer, gather the run's figures and write the training log
    (the saving and writing on the main process only)."""
    import torch

    trainer = session.trainer
    hist = _history(session)
    adapter_dir = out_dir / ADAPTER_DIRNAME
    # drop accelerate's mixed-precision forward wrapper: the returned model computes as loaded
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if trainer.is_fsdp_enabled:
        # FSDP (configs/accelerate/fsdp.yaml): each process holds a shard; the Trainer gathers the
        # full state on every process (a collective: all must call it) and the main one writes it
        trainer.save_model(str(adapter_dir))
    elif trainer.is_world_process_zero():
        trained.save_pretrained(str(adapter_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(adapter_dir))
    figures = _figures(session, hist, out_dir, t_call)
    steps = hist["steps"]
    result = TrainResult(
        out_dir=str(out_dir),
        adapter_dir=str(adapter_dir),
        log_path=str(out_dir / LOG_FILENAME),
        config=cfg.to_dict(),
        n_examples=data.n_examples,
        n_eval_examples=sum(len(d) for d in data.eval_datasets.values()),
        data={"train": data.train_report.to_dict(), "eval": data.eval_reports},
        global_step=int(trainer.state.global_step),
        epochs_done=float(trainer.state.epoch or 0.0),
        train_loss=session.output.training_loss if figures["tokens"] else None,
        final_loss=(sum(x["loss"] for x in steps[-3:]) / len(steps[-3:])) if steps else None,
        eval_loss=hist["eval_loss"],
        steps=steps,
        session_steps=[c["step"] for c in session.clock],
        evals=hist["evals"],
        threads=torch.get_num_threads(),
        peak_gpu_gb=round(torch.cuda.max_memory_allocated() / 1e9, 3) if device == "cuda" else None,
        device=device + (" bf16" if use_bf16 else ""),
        resumed_from=session.resumed_from,
        model=trained if keep_model else None,
        **figures,
    )
    if trainer.is_world_process_zero():
        tmp = out_dir / (LOG_FILENAME + ".tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str))
        os.replace(tmp, out_dir / LOG_FILENAME)
    return result
