"""Stage 3: fine-tune the student with LoRA on the simulated corpus.

One idea per submodule; every name below is re-exported here (``training.train_lora`` etc.):

* :mod:`.sequences` — an instance becomes one token sequence rendered with the shared prompt
  builder and the model's chat template, labelled only on the assistant turns (steps and final
  answer, each with its end-of-turn token); over-long instances are cut after a whole turn. The
  :class:`DynamicPaddingCollator` pads each batch to its longest member (or to a fixed
  ``pad_to``, the reference recipe of the throughput benchmark); :func:`mask_preview`.
* :mod:`.fastloss` — cheaper steps, same loss: :func:`assistant_loss` applies the LM head only at
  loss-bearing positions and computes a tool's shared system turn once per batch;
  :class:`ToolGroupedSampler` builds such batches. Single-process runs only; distributed runs
  use the stock loss and the stock length-grouped sampler.
* :mod:`.trainer` — the HF ``Trainer`` subclass that uses them, and the per-step clock
  (imports ``transformers``, so it loads only when a run trains).
* :mod:`.weights` — :func:`plain_weights` makes a GGUF-loaded base trainable; :func:`weights_dtype`;
  base loading.
* :mod:`.config` — :class:`TrainConfig`, :class:`TrainResult`, the run directory's file names.
* :mod:`.train` — :func:`train_lora`: build the data, build the arguments, train, summarise;
  the adapter is saved in the standard peft format next to the tokenizer and a training log.
* :mod:`.chat_template` — :data:`TRAINING_CHAT_TEMPLATE`: ChatML with a tools block, tool calls
  and ``{% generation %}`` markers (SmolLM2's stock template has neither); without tools it
  renders the ReAct chat exactly as the stock template does.
* :mod:`.reference` — the reference trainer: TRL's ``SFTTrainer`` with padding-free batches and
  an assistant-only loss (:func:`sft_train`), on :func:`react_conversations` or on the exported
  messages + tools dataset; the throughput benchmark's baseline.
* :mod:`.run` — :func:`run_training`, the profile run (corpus, or ``train_data`` in any format
  of :mod:`toolalpaca_utils.formats`, in; adapter, log and stage manifest out; a finished run
  reused, a command-line run never overwritten from in-process: :class:`FinishedRunDiffersError`),
  and :func:`plot_loss_curves` for the notebook.
* :mod:`.__main__` — the command line (the same code under ``accelerate launch`` on a GPU box)::

    python -m toolalpaca_utils.training --profile cpu [--corpus DIR] [--out DIR] [--epochs 2 ...]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m toolalpaca_utils.training --profile gpu
"""
from __future__ import annotations

from .chat_template import TRAINING_CHAT_TEMPLATE, with_training_template
from .config import (
    ADAPTER_DIRNAME, DEFAULT_TARGET_MODULES, LOG_FILENAME, TrainConfig, TrainResult, load_training_log,
)
from .fastloss import ToolGroupedSampler, assistant_loss, supports_assistant_loss
from .reference import ReferenceResult, react_conversations, sft_train
from .run import (
    COMMAND_LINE, IN_PROCESS, NOTEBOOK, STAGE, FinishedRunDiffersError, _finished_run, plot_loss_curves,
    profile_parameters, run_training, settings_diff, train_config_kwargs, training_data,
)
from .sequences import (
    IGNORE_INDEX, BuildReport, DynamicPaddingCollator, EmptyCorpusError, TemplateMismatchError,
    assistant_char_spans, build_example, build_examples, instance_messages, mask_preview, to_dataset,
)
from .train import peak_rss_gb, split_heldout, train_lora
from .weights import plain_weights, weights_dtype

__all__ = [
    "ADAPTER_DIRNAME", "COMMAND_LINE", "DEFAULT_TARGET_MODULES", "IGNORE_INDEX", "IN_PROCESS",
    "LOG_FILENAME", "NOTEBOOK", "STAGE", "TRAINING_CHAT_TEMPLATE", "ReferenceResult", "react_conversations",
    "sft_train", "with_training_template", "BuildReport", "DynamicPaddingCollator", "EmptyCorpusError",
    "FinishedRunDiffersError", "TemplateMismatchError", "ToolGroupedSampler", "TrainConfig", "TrainResult",
    "assistant_char_spans", "assistant_loss", "build_example", "build_examples", "instance_messages",
    "load_training_log", "mask_preview", "peak_rss_gb", "plain_weights", "plot_loss_curves",
    "profile_parameters", "run_training", "settings_diff", "split_heldout", "supports_assistant_loss",
    "to_dataset", "train_config_kwargs", "train_lora", "training_data", "weights_dtype",
]
