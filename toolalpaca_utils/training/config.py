"""What a run is asked and what it reports: :class:`TrainConfig` (the hyper-parameters, mirrored
by the notebook's parameters cell and the profiles), :class:`TrainResult` (the figures written to
``training_log.json``) and the file names of a run directory.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
ADAPTER_DIRNAME = "adapter"
LOG_FILENAME = "training_log.json"
CHECKPOINTS_DIRNAME = "checkpoints"


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_lora` (the notebook's parameters cell mirrors them)."""

    base_model: str = "smollm2-135m-instruct"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | list[str] = DEFAULT_TARGET_MODULES
    layers_to_transform: list[int] | None = None   # explicit layer indices, or
    lora_last_layers: int | None = None            # only the last N layers (backward stops there); 0/None: all
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1                           # > 0 overrides epochs
    per_device_batch_size: int = 4
    grad_accum: int = 2
    max_length: int = 1024
    seed: int = 0
    eval_fraction: float = 0.1                    # held-out share of the training instances
    warmup: float = 0.0                           # ratio of steps (< 1) or a number of steps; HF's
                                                  # warmup runs step 1 at lr 0: a waste in a short run
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    group_by_length: bool = True
    logging_steps: int = 1
    save_steps: int | None = None                 # None: a checkpoint per epoch (or at the end)
    eval_steps: int | None = None                 # None: held-out loss per epoch (or at the end)
    save_total_limit: int = 2
    gradient_checkpointing: bool = False
    num_threads: int | None = None                # CPU threads (torch.set_num_threads)
    label_positions_only: bool = True             # LM head only on loss-bearing positions
    share_prefix: bool = True                     # batch a tool's conversations, its docs computed once
    bf16: bool | None = None                      # None: on a bf16 GPU, or a CPU with bf16 units
    attn_implementation: str = ""                 # "" = transformers' default; e.g. "flash_attention_2"
    prompt_format: str = "react"                  # "react" (the papers' ReAct text) | "chat" (tool-calling
                                                  # chat, training/chat_template.py); evaluate in the same one
    train_data: str = ""                          # not used by train_lora: what run_training read ("" = the
                                                  # corpus), kept in the log so a run on other data is not reused

    def __post_init__(self):
        if self.prompt_format not in ("react", "chat"):
            raise ValueError(f'prompt_format must be "react" or "chat", got {self.prompt_format!r}')

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass
class TrainResult:
    out_dir: str
    adapter_dir: str
    log_path: str
    config: dict
    n_examples: int
    n_eval_examples: int
    data: dict                    # build reports of the train and held-out sets
    global_step: int
    epochs_done: float
    train_loss: float | None      # mean training loss over the run (Trainer's figure)
    final_loss: float | None      # mean of the last three logged training losses (one step is noisy)
    eval_loss: float | None       # last held-out loss
    steps: list[dict]             # {"step", "epoch", "loss", "learning_rate", "seconds"}, whole run
    session_steps: list[int]      # optimizer steps run by this call (fewer after a resume)
    evals: list[dict]             # {"step", "epoch", "eval_loss"}
    tokens: int                   # non-pad tokens seen in this session
    train_seconds: float          # wall time of the training loop, evaluations excluded
    wall_seconds: float           # the whole call, loading and saving included
    cpu_seconds: float            # CPU time of the training loop (all threads): on a shared
    threads: int                  # machine, cpu_seconds / threads estimates the unshared wall time
    tokens_per_s: float
    peak_rss_gb: float
    peak_gpu_gb: float | None     # torch.cuda.max_memory_allocated, on a GPU
    device: str
    resumed_from: str | None
    stats_from_previous_run: bool  # a finished run re-entered: its figures, not this call's
    model: Any = field(default=None, repr=False, compare=False)  # the trained PeftModel (keep_model=True)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}

    @property
    def minutes(self) -> float:
        return self.wall_seconds / 60


def load_training_log(path: str | Path) -> dict:
    """The training log of a run (a directory with ``training_log.json`` or the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILENAME
    return json.loads(path.read_text())

