"""The HF ``Trainer`` pieces of a run: :class:`AssistantLossTrainer` (the fast loss and the
tool-grouped sampler where they are exact) and :class:`StepClock` (wall time per optimizer step).
This module imports ``transformers`` when it loads, so :mod:`.train` imports it only to train.
"""
from __future__ import annotations

import time

from transformers import Trainer, TrainerCallback

from .fastloss import ToolGroupedSampler, assistant_loss, supports_assistant_loss


class AssistantLossTrainer(Trainer):
    """The HF Trainer with :func:`assistant_loss` for single-process runs of plain-head
    models, and tool-grouped batches when prefixes are shared. Distributed runs (DDP/FSDP
    wrappers) and other models use the stock loss and the stock length-grouped sampler."""

    def __init__(self, *args, label_positions_only: bool = True, share_prefix: bool = True, **kwargs):
        self.label_positions_only = label_positions_only
        self.share_prefix = share_prefix
        super().__init__(*args, **kwargs)

    def _fast_path_ok(self, model) -> bool:
        if not self.label_positions_only or self.accelerator.num_processes != 1:
            return False
        if self.accelerator.unwrap_model(model) is not model:
            return False
        return supports_assistant_loss(model)

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if (self.share_prefix and self._fast_path_ok(self.model)
                and self.args.train_sampling_strategy == "group_by_length"
                and hasattr(ds, "column_names") and "group" in ds.column_names):
            return ToolGroupedSampler(ds["group"], ds["length"], self.args.per_device_train_batch_size,
                                      seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        prefix = inputs.pop("prefix_len", None)
        if "labels" not in inputs or not self._fast_path_ok(model):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        if prefix is not None:
            inputs["prefix_len"] = prefix
        with self.accelerator.autocast():  # what accelerate wraps around model.forward
            loss = assistant_loss(model, inputs, share_prefix=self.share_prefix,
                                  num_items_in_batch=num_items_in_batch)
        return (loss, {"loss": loss}) if return_outputs else loss


class StepClock(TrainerCallback):
    """Wall time at each optimizer step, appended to ``steps`` as ``{"step", "seconds"}``."""

    def __init__(self, steps: list[dict]):
        self.steps = steps

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.steps.append({"step": state.global_step, "seconds": round(time.perf_counter() - self.t0, 3)})
