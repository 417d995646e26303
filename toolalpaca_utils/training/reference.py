"""The reference trainer: TRL's ``SFTTrainer`` with padding-free batches and a loss on the
assistant's tokens only, the recipe the field uses today. It trains the same LoRA (from the same
:class:`TrainConfig`) on conversations, so the project's trainer can be measured against it
(``benchmarks/training_throughput.py``) and the exported messages + tools dataset is shown to
train without glue code (``tests/test_trl.py``).

The assistant-only mask comes from :data:`.chat_template.TRAINING_CHAT_TEMPLATE`'s
``{% generation %}`` markers (SmolLM2's stock template has none). Rendered without tools, that
template gives the project's ReAct chat exactly, so on :func:`react_conversations` TRL sees the
very tokens and loss mask :func:`.sequences.build_example` makes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..llm.hf import bf16_available
from ..runs import cpu_seconds
from .chat_template import with_training_template
from .config import ADAPTER_DIRNAME, CHECKPOINTS_DIRNAME, TrainConfig
from .sequences import instance_messages


def react_conversations(records: dict, instances: list[dict]):
    """A ``datasets.Dataset`` with one ``messages`` column: each instance's ReAct chat, as the
    project's trainer renders it (instances whose tool has no record are an error, not skipped)."""
    from datasets import Dataset

    missing = sorted({i["tool"] for i in instances} - set(records))
    if missing:
        raise KeyError(f"no tool record for {missing}")
    return Dataset.from_list([{"messages": instance_messages(records[i["tool"]], i)} for i in instances])


@dataclass
class ReferenceResult:
    """What an ``SFTTrainer`` run reports (the figures the benchmark sets side by side)."""

    adapter_dir: str
    global_step: int
    losses: list[float]           # each logged step's training loss
    final_loss: float | None      # mean of the last three logged losses, as TrainResult.final_loss
    train_loss: float | None      # mean training loss over the run (the Trainer's figure)
    tokens: int                   # tokens trained on (padding-free: every token is a real one)
    train_seconds: float
    cpu_seconds: float            # CPU time of the training loop (all threads), as TrainResult's
    trainer: Any = field(default=None, repr=False)

    @property
    def tokens_per_s(self) -> float:
        return round(self.tokens / self.train_seconds, 2) if self.train_seconds else 0.0


def sft_config(cfg: TrainConfig, out_dir: Path, *, use_cpu: bool, use_bf16: bool):
    """``SFTConfig`` for ``cfg``: padding-free, assistant-only loss, no truncation (padding-free
    without packing cannot enforce ``max_length``: the caller passes sequences that fit)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out_dir / CHECKPOINTS_DIRNAME), per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else -1, warmup_steps=cfg.warmup,
        lr_scheduler_type=cfg.lr_scheduler, weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, logging_first_step=True, save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=use_cpu, bf16=use_bf16, dataloader_num_workers=0,
        padding_free=True, assistant_only_loss=True, max_length=None, packing=False,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


def sft_train(dataset, *, model, tokenizer, out_dir: str | Path, config: TrainConfig) -> ReferenceResult:
    """Train ``config``'s LoRA on ``model`` with ``SFTTrainer`` on a conversational ``dataset``
    (``messages``, and ``tools`` when it has them) and save the adapter under ``out_dir``.
    ``model`` is modified (pass a copy); the tokenizer is copied before its template changes."""
    import torch
    from transformers import set_seed
    from trl import SFTTrainer

    from .train import _with_lora

    out_dir = Path(out_dir)
    set_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    tokenizer = with_training_template(copy.deepcopy(tokenizer))
    tokenizer.padding_side = "right"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_bf16 = bf16_available(device) if config.bf16 is None else bool(config.bf16)  # as train_lora decides
    args = sft_config(config, out_dir, use_cpu=device == "cpu", use_bf16=use_bf16)
    trainer = SFTTrainer(model=_with_lora(model, config), args=args, train_dataset=dataset,
                         processing_class=tokenizer)
    cpu0 = cpu_seconds(children=False)
    output = trainer.train()
    cpu_train = cpu_seconds(children=False) - cpu0
    adapter_dir = out_dir / ADAPTER_DIRNAME
    trainer.model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    tokens = int(max((h.get("num_tokens", 0) for h in history), default=0))
    return ReferenceResult(
        adapter_dir=str(adapter_dir), global_step=int(trainer.state.global_step), losses=losses,
        final_loss=(sum(losses[-3:]) / len(losses[-3:])) if losses else None,
        train_loss=output.training_loss if losses else None, tokens=tokens,
        train_seconds=float(output.metrics.get("train_runtime", 0.0)), cpu_seconds=cpu_train, trainer=trainer)
