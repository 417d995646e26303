"""Stage 3: fine-tune the student with LoRA on the simulated corpus.

Three pieces, each usable on its own:

* **Sequence builder** — :func:`build_example` renders an instance with the shared prompt builder
  (:func:`toolalpaca_utils.react.build_messages`) and the model's own chat template, tokenizes the
  whole text once, and labels only the assistant turns: the Thought / Action / Action Input steps
  and the final answer, each followed by the template's end-of-turn token so the model learns to
  stop. The system turn (tool documentation), the instruction and every ``Observation:`` turn get
  label ``-100``. Assistant spans are found by rendering the chat prefix by prefix and checking
  that each prefix is a prefix of the full rendering (so a template that injects a default system
  prompt, or anything else, is handled); tokens are mapped to spans with the tokenizer's offsets.
  An over-long instance is cut after its last complete assistant turn that fits (``n_truncated``
  counts the removed tokens) and labels are sliced together with their tokens.
* **Collator** — :class:`DynamicPaddingCollator` pads each batch to its longest member (labels
  with ``-100``); ``pad_to`` gives the reference recipe (every sequence padded to a fixed length)
  for the throughput benchmark.
* **Trainer** — :func:`train_lora` wraps ``peft`` LoRA around the HF ``Trainer``: length-grouped
  batches, gradient accumulation, seeded, held-out loss each epoch, checkpoints that resume, CPU
  by default, bf16 autocast on a GPU (or a CPU with bf16 units). The adapter is saved in the
  standard peft format (``PeftModel.from_pretrained`` loads it) next to the tokenizer, a training
  log and, for a profile run (:func:`run_training`), the stage manifest.
* **Cheaper steps, same loss** — :func:`assistant_loss` (single-process runs) applies the LM head
  only at loss-bearing positions, and :class:`ToolGroupedSampler` batches one tool's
  conversations so that their common system turn (the tool documentation, most of each
  sequence) runs once per batch with its keys/values shared by every row. Both are exact: a
  test checks the loss and gradients against the stock computation. Distributed runs use the
  stock loss and the stock length-grouped sampler.

Command line (the same code under ``accelerate launch`` on a GPU box)::

    python -m toolalpaca_utils.training --profile cpu [--corpus DIR] [--out DIR] [--epochs 2 ...]
    accelerate launch -m toolalpaca_utils.training --profile gpu
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from .corpus import load_split, load_tools, trajectory_turns
from .llm.hf import bf16_available
from .react import build_messages

IGNORE_INDEX = -100
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
STAGE = "training"
NOTEBOOK = "03_training"
ADAPTER_DIRNAME = "adapter"
LOG_FILENAME = "training_log.json"


class EmptyCorpusError(ValueError):
    """No usable training instance (an empty split, or every instance dropped)."""


class TemplateMismatchError(ValueError):
    """The chat template does not render the assistant turns in a way that can be located."""


# =============================================================================================
# sequence builder
# =============================================================================================
def instance_messages(record: dict, instance: dict) -> list[dict]:
    """The full chat of an instance, built with the prompt builder evaluation uses."""
    return build_messages(record, instance["instruction"], trajectory_turns(instance))


def _render(tokenizer, messages: Sequence[dict], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def _end_of_turn(tokenizer) -> str | None:
    """The text that closes a turn in the template (``<|im_end|>`` for ChatML models)."""
    cached = getattr(tokenizer, "_toolalpaca_end_of_turn", None)
    if cached is not None:
        return cached
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    eot = next((t for t in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>") if t in vocab),
               tokenizer.eos_token)
    try:
        tokenizer._toolalpaca_end_of_turn = eot
    except AttributeError:
        pass
    return eot


def assistant_char_spans(tokenizer, messages: Sequence[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans that carry loss: each assistant turn's content
    plus the end-of-turn marker right after it (not the template's newline after the marker).

    Spans are located by rendering ``messages[:i]`` with the generation prompt (where turn *i*
    starts) and ``messages[:i+1]`` (where it ends) and checking both renderings are prefixes of
    the full one. A template that rewrites earlier turns later (prefix-unstable) falls back to
    searching each content in order; content it cannot find raises TemplateMismatchError.
    """
    full = _render(tokenizer, messages, generation_prompt=False)
    eot = _end_of_turn(tokenizer)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        content = msg["content"]
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if full.startswith(before) and full.startswith(upto) and upto[len(before):].startswith(content):
            start = len(before)
            tail = upto[start + len(content):]
        else:  # prefix-unstable template: find the content after the previous span
            start = full.find(content, cursor)
            if start < 0 or not content:
                raise TemplateMismatchError(
                    f"assistant turn {i} is not rendered verbatim by the chat template; cannot place its labels")
            tail = full[start + len(content):]
        end = start + len(content)
        k = tail.find(eot) if eot else -1
        if k >= 0 and not tail[:k].strip():  # only whitespace between the content and the marker
            end += k + len(eot)
        if full[start:start + len(content)] != content:
            raise TemplateMismatchError(f"assistant turn {i} does not render at its expected position")
        spans.append((start, end))
        cursor = end
    return full, spans


def _label_tokens(tokenizer, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int], list[int], bool]:
    """Token ids, labels and the token index where each span ends. Tokens come from one pass
    over the whole text (as at inference); if a token straddles a span boundary, the text is
    tokenized segment by segment instead so that labels never cover a prompt character."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    span_ends: list[int] = []
    straddle = False
    j = 0
    for s, e in spans:
        while j < len(ids) and offsets[j][1] <= s:
            j += 1
        while j < len(ids) and offsets[j][0] < e:
            a, b = offsets[j]
            if a < s or b > e:
                straddle = True
                break
            labels[j] = ids[j]
            j += 1
        if straddle:
            break
        span_ends.append(j)
    if not straddle:
        return ids, labels, span_ends, False
    # fallback: tokenize prompt and assistant segments separately, boundaries are then exact
    ids, labels, span_ends = [], [], []
    pos = 0
    for s, e in spans:
        for seg, bearing in ((text[pos:s], False), (text[s:e], True)):
            if not seg:
                continue
            seg_ids = tokenizer(seg, add_special_tokens=False)["input_ids"]
            ids += seg_ids
            labels += list(seg_ids) if bearing else [IGNORE_INDEX] * len(seg_ids)
        span_ends.append(len(ids))
        pos = e
    if pos < len(text):
        rest = tokenizer(text[pos:], add_special_tokens=False)["input_ids"]
        ids += rest
        labels += [IGNORE_INDEX] * len(rest)
    return ids, labels, span_ends, True


def build_example(tokenizer, record: dict, instance: dict, max_length: int) -> dict:
    """One training sequence for ``instance`` of tool ``record``.

    Returns ``{"id", "input_ids", "labels", "attention_mask", "length", "n_loss_tokens",
    "n_truncated", "n_turns", "n_turns_kept", "segmented", "prefix_len" (tokens of the system
    turn), "group" (the tool), "drop_reason"}``. Longer than
    ``max_length``: cut after the last complete assistant turn (content + end-of-turn) that fits,
    or at ``max_length`` when not even the first turn fits; ``n_truncated`` counts removed tokens.
    When the prompt alone fills ``max_length`` nothing is left to learn: ``drop_reason`` says so
    and the sequence is empty.
    """
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, got {max_length}")
    messages = instance_messages(record, instance)
    text, spans = assistant_char_spans(tokenizer, messages)
    ids, labels, span_ends, segmented = _label_tokens(tokenizer, text, spans)
    full_len = len(ids)
    n_turns = len(spans)
    n_kept = n_turns
    drop_reason = None
    if full_len > max_length:
        fitting = [end for end in span_ends if end <= max_length]
        cut = fitting[-1] if fitting else max_length
        n_kept = len(fitting)
        ids, labels = ids[:cut], labels[:cut]
        if all(l == IGNORE_INDEX for l in labels):
            drop_reason = (f"prompt (system + instruction) is longer than max_length={max_length} tokens: "
                           f"no assistant token fits")
            ids, labels = [], []
    n_loss = sum(1 for l in labels if l != IGNORE_INDEX)
    prefix_len = 0 if segmented else _system_prefix_len(tokenizer, messages, text, ids)
    if n_turns == 0 and drop_reason is None:
        drop_reason = "no assistant turns (no steps and no final answer)"
    return {
        "id": instance.get("id"),
        "input_ids": ids,
        "labels": labels,
        "attention_mask": [1] * len(ids),
        "length": len(ids),
        "n_loss_tokens": n_loss,
        "n_truncated": full_len - len(ids) if drop_reason is None else full_len,
        "n_turns": n_turns,
        "n_turns_kept": n_kept,
        "segmented": segmented,
        "prefix_len": prefix_len if ids else 0,
        "group": str(instance.get("tool")),
        "drop_reason": drop_reason,
    }


def _system_prefix_len(tokenizer, messages: Sequence[dict], text: str, ids: list[int]) -> int:
    """Tokens of the system turn (the tool documentation) at the start of ``ids``: every
    conversation of a tool starts with the same ones, which lets a batch compute them once.
    0 when the system turn does not end on a token boundary of the full sequence."""
    if not messages or messages[0]["role"] != "system":
        return 0
    sys_text = _render(tokenizer, messages[:1], generation_prompt=False)
    if not text.startswith(sys_text):
        return 0
    sys_ids = tokenizer(sys_text, add_special_tokens=False)["input_ids"]
    n = len(sys_ids)
    return n if n < len(ids) and ids[:n] == list(sys_ids) else 0


@dataclass
class BuildReport:
    n_instances: int = 0
    n_examples: int = 0
    n_truncated_examples: int = 0
    n_truncated_tokens: int = 0
    n_tokens: int = 0
    n_loss_tokens: int = 0
    n_segmented: int = 0
    max_length: int = 0
    dropped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def build_examples(tokenizer, records: dict | list, instances: Iterable[dict], max_length: int,
                   *, what: str = "training") -> tuple[list[dict], BuildReport]:
    """Examples for every usable instance, and a report of what was truncated or dropped (and
    why). ``records`` is a dict by Name or a list of tool records. Raises EmptyCorpusError when
    nothing usable is left."""
    by_name = records if isinstance(records, dict) else {r["Name"]: r for r in records}
    instances = list(instances)
    report = BuildReport(n_instances=len(instances), max_length=max_length)
    if not instances:
        raise EmptyCorpusError(f"the {what} corpus is empty: no instances to train on")
    examples = []
    for inst in instances:
        iid = inst.get("id")
        if inst.get("kept") is False:
            report.dropped.append({"id": iid, "reason": f"not kept by simulation ({inst.get('drop_reason')})"})
            continue
        record = by_name.get(inst.get("tool"))
        if record is None:
            report.dropped.append({"id": iid, "reason": f"tool {inst.get('tool')!r} is not in tools.json"})
            continue
        ex = build_example(tokenizer, record, inst, max_length)
        if ex["drop_reason"]:
            report.dropped.append({"id": iid, "reason": ex["drop_reason"]})
            continue
        examples.append(ex)
        report.n_tokens += ex["length"]
        report.n_loss_tokens += ex["n_loss_tokens"]
        report.n_segmented += int(ex["segmented"])
        if ex["n_truncated"]:
            report.n_truncated_examples += 1
            report.n_truncated_tokens += ex["n_truncated"]
    report.n_examples = len(examples)
    if not examples:
        reasons = sorted({d["reason"] for d in report.dropped})
        raise EmptyCorpusError(f"no usable {what} instance out of {len(instances)}; reasons: {reasons}")
    return examples, report


def to_dataset(examples: list[dict]):
    """A HF ``Dataset`` with the columns the model, the collator and the samplers need."""
    from datasets import Dataset

    keep = ("input_ids", "labels", "attention_mask", "length", "prefix_len", "group")
    return Dataset.from_dict({k: [ex.get(k, 0) for ex in examples] for k in keep})


# =============================================================================================
# collator
# =============================================================================================
class DynamicPaddingCollator:
    """Right-pads a batch to its longest sequence (or to ``pad_to``, the fixed-length reference
    recipe); labels are padded with -100 and the attention mask with 0. Each row's system-turn
    length travels along as ``prefix_len`` (used by :func:`assistant_loss`, never by the model)."""

    def __init__(self, pad_token_id: int, *, pad_to: int | None = None, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to = pad_to
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        width = self.pad_to or longest
        if self.pad_to is not None and longest > self.pad_to:
            raise ValueError(f"a sequence of {longest} tokens is longer than pad_to={self.pad_to}")
        if self.pad_to_multiple_of and self.pad_to is None:
            width = int(math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        n = len(features)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            input_ids[i, :k] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.as_tensor(f["labels"], dtype=torch.long)
            attention[i, :k] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
        if all("prefix_len" in f for f in features):
            batch["prefix_len"] = torch.as_tensor([int(f["prefix_len"]) for f in features], dtype=torch.long)
        return batch


# =============================================================================================
# trainer
# =============================================================================================
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


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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


def _make_callback(steps: list[dict]):
    from transformers import TrainerCallback

    class _StepClock(TrainerCallback):
        """Wall time at each optimizer step, and the peak RSS seen along the way."""

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            steps.append({"step": state.global_step, "seconds": round(time.perf_counter() - self.t0, 3)})

    return _StepClock()


# model types whose logits are exactly ``lm_head(last hidden state)`` (no scaling/soft-capping)
_PLAIN_LM_HEAD = {"llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3"}


def supports_assistant_loss(model) -> bool:
    """Whether :func:`assistant_loss` computes exactly the stock causal-LM loss for ``model``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base.config, "model_type", None) in _PLAIN_LM_HEAD and hasattr(base, "get_decoder")


def _prefix_groups(ids, lengths: list[int], prefix_lens: list[int] | None, min_shared: int):
    """Rows that start with the same system turn, each group with the length of the prefix its
    rows share (leaving every row at least one token of its own); other rows form one plain group."""
    if prefix_lens is None:
        return [(list(range(len(lengths))), 0)]
    buckets: dict[tuple, list[int]] = {}
    for r, p in enumerate(prefix_lens):
        key = (p, tuple(ids[r, :p].tolist())) if p > 0 else ("row", r)
        buckets.setdefault(key, []).append(r)
    shared_groups, plain = [], []
    for rows in buckets.values():
        if len(rows) == 1:
            plain += rows
            continue
        limit = min(lengths[r] for r in rows) - 1
        same = (ids[rows, :limit] == ids[rows[0], :limit]).all(0)
        shared = int(same.int().cumprod(0).sum())
        if shared >= min_shared:
            shared_groups.append((rows, shared))
        else:
            plain += rows
    return shared_groups + ([(sorted(plain), 0)] if plain else [])


def _hidden_with_shared_prefix(decoder, ids, mask, shared: int):
    """Last hidden states of rows that share their first ``shared`` tokens: the prefix runs once
    (batch 1) and its keys/values are repeated for the rows' own suffixes. Causal attention makes
    this equal to running every row in full; gradients flow into the prefix through the cache."""
    import torch

    k = ids.shape[0]
    width = int(mask.sum(1).max())
    pre = decoder(input_ids=ids[:1, :shared], use_cache=True)
    cache = pre.past_key_values
    cache.batch_repeat_interleave(k)
    positions = torch.arange(shared, width, device=ids.device).unsqueeze(0).expand(k, -1)
    suffix = decoder(input_ids=ids[:, shared:width], attention_mask=mask[:, :width], past_key_values=cache,
                     position_ids=positions, use_cache=True)
    return torch.cat([pre.last_hidden_state.expand(k, -1, -1), suffix.last_hidden_state], dim=1)


def assistant_loss(model, batch: dict, *, share_prefix: bool = True, num_items_in_batch=None,
                   min_shared: int = 32):
    """The causal-LM loss of a batch, computed only where it is needed.

    Equal to the stock loss (sum of the cross-entropies of the label tokens divided by
    ``num_items_in_batch``, default their number) but cheaper: the LM head projects only the
    loss-bearing positions onto the vocabulary (about a fifth of a tool-use sequence), each group
    of rows is cut to its own longest row, and with ``share_prefix`` rows that start with the same
    system turn (conversations of one tool) compute that prefix once.
    """
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    lengths = [int(x) for x in mask.sum(1).tolist()]
    prefix = batch.get("prefix_len")
    prefix_lens = [int(x) for x in prefix.tolist()] if (share_prefix and prefix is not None) else None
    total, count, hidden = None, 0, None
    for rows, shared in _prefix_groups(ids, lengths, prefix_lens, min_shared):
        width = max(lengths[r] for r in rows)
        if shared:
            hidden = _hidden_with_shared_prefix(decoder, ids[rows], mask[rows], shared)
        else:
            hidden = decoder(input_ids=ids[rows, :width], attention_mask=mask[rows, :width]).last_hidden_state
        target = labels[rows, 1:width]
        keep = target != IGNORE_INDEX
        count += int(keep.sum())
        if keep.any():
            part = F.cross_entropy(head(hidden[:, :-1][keep]).float(), target[keep], reduction="sum")
            total = part if total is None else total + part
    if total is None:  # no label in the batch: a zero that still belongs to the graph
        total = hidden.sum() * 0.0
    denom = num_items_in_batch if num_items_in_batch is not None else max(count, 1)
    if hasattr(denom, "to"):
        denom = denom.to(total.device)
    return total / denom


class ToolGroupedSampler:
    """Batches of one tool's conversations, of similar lengths (longest first within a tool),
    in a seeded random order that changes each epoch; the leftovers of every tool are batched
    together by length. Only the last batch may be short, so batches stay aligned."""

    def __init__(self, groups: list[str], lengths: list[int], batch_size: int, seed: int = 0):
        self.groups, self.lengths, self.batch_size, self.seed = list(groups), list(lengths), batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        bs = self.batch_size
        by_group: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            by_group.setdefault(g, []).append(i)
        chunks, rest = [], []
        for g in sorted(by_group):
            idx = by_group[g]
            rng.shuffle(idx)
            idx.sort(key=lambda i: -self.lengths[i])
            n_full = len(idx) // bs * bs
            chunks += [idx[j:j + bs] for j in range(0, n_full, bs)]
            rest += idx[n_full:]
        rest.sort(key=lambda i: -self.lengths[i])
        tail = [rest[j:j + bs] for j in range(0, len(rest), bs)]
        short = tail.pop() if tail and len(tail[-1]) < bs else None
        chunks += tail
        rng.shuffle(chunks)
        if short:
            chunks.append(short)
        return iter([i for c in chunks for i in c])


def _make_trainer_class():
    from transformers import Trainer

    class AssistantLossTrainer(Trainer):
        """The HF Trainer with :func:`assistant_loss` for single-process runs of plain-head
        models, and tool-grouped batches when prefixes are shared. Distributed runs (DDP/FSDP
        wrappers) and other models use the stock loss and the stock length-grouped sampler."""

        label_positions_only = True
        share_prefix = True

        def _fast_path_ok(self, model) -> bool:
            if not self.label_positions_only or self.accelerator.num_processes != 1:
                return False
            if self.accelerator.unwrap_model(model) is not model:
                return False
            return supports_assistant_loss(model)

        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if (self.share_prefix and self._fast_path_ok(self.model) and self.args.train_sampling_strategy == "group_by_length"
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

    return AssistantLossTrainer


def _lora_layers(cfg: TrainConfig, model) -> list[int] | None:
    if cfg.layers_to_transform is not None:
        return list(cfg.layers_to_transform)
    if cfg.lora_last_layers:
        n = int(model.config.num_hidden_layers)
        return list(range(max(0, n - int(cfg.lora_last_layers)), n))
    return None


def plain_weights(model):
    """Make a GGUF-loaded model trainable. transformers marks a model read from a GGUF file as
    quantized even when its legacy loader dequantized every tensor to plain ``nn.Linear``
    weights (the embedded model's case), and the Trainer refuses quantized models. When the
    weights really are plain float tensors the marker is dropped; weights still packed in GGUF
    blocks raise a clear error."""
    import torch

    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or type(quantizer).__name__ != "GgufHfQuantizer":
        return model
    if getattr(quantizer, "supported", False) and not quantizer.quantization_config.dequantize:
        packed = [type(m).__name__ for m in model.modules()
                  if not isinstance(m, torch.nn.Module) or "gguf" in type(m).__name__.lower()]
        if packed:
            raise ValueError("this GGUF model keeps its weights in quantized blocks, which cannot be trained; "
                             "load it dequantized (as toolalpaca_utils.llm.hf does)")
    if any(p.dtype not in (torch.float32, torch.bfloat16, torch.float16) for p in model.parameters()):
        raise ValueError("the base model has non-float weights and cannot be trained with LoRA here")
    quantizer.remove_quantization_config(model)  # what transformers does for a dequantized load
    model.hf_quantizer = None
    model.is_quantized = False
    return model


def _load_base(base_model: str, device: str):
    import torch

    from .llm.hf import load_model_and_tokenizer

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # load on the CPU: the Trainer (and accelerate, under a multi-GPU launch) places it
    return load_model_and_tokenizer(base_model, device="cpu", dtype=dtype)


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
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    t_call = time.perf_counter()
    cfg = config or TrainConfig()
    if overrides:
        unknown = set(overrides) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown training parameters: {sorted(unknown)}")
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    device = "cuda" if torch.cuda.is_available() else "cpu"

    if not train_instances:
        raise EmptyCorpusError("the training corpus is empty: no instances to train on")
    if eval_instances is None:
        train_instances, held = split_heldout(train_instances, cfg.eval_fraction, cfg.seed)
        eval_sets = {"heldout": held} if held else {}
    elif isinstance(eval_instances, dict):
        eval_sets = {k: list(v) for k, v in eval_instances.items() if v}
    else:
        eval_sets = {"heldout": list(eval_instances)} if eval_instances else {}

    set_seed(cfg.seed)
    if model is None or tokenizer is None:
        model, tokenizer = _load_base(cfg.base_model, device)
    model = plain_weights(model)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    examples, train_report = build_examples(tokenizer, records, train_instances, cfg.max_length)
    eval_datasets, eval_reports = {}, {}
    for name, insts in eval_sets.items():
        try:
            ex, rep = build_examples(tokenizer, records, insts, cfg.max_length, what=f"{name} evaluation")
        except EmptyCorpusError as exc:
            eval_reports[name] = {"error": str(exc)}
            continue
        eval_datasets[name] = to_dataset(ex)
        eval_reports[name] = rep.to_dict()
    train_ds = to_dataset(examples)

    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), layers_to_transform=_lora_layers(cfg, model),
        bias="none", task_type="CAUSAL_LM",
    )
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    peft_model = get_peft_model(model, lora)

    by_steps = cfg.max_steps and cfg.max_steps > 0
    eval_strategy = "no" if not eval_datasets else ("steps" if (cfg.eval_steps or by_steps) else "epoch")
    eval_steps = (cfg.eval_steps or (max(1, cfg.max_steps) if by_steps else None)) if eval_datasets else None
    save_strategy = "steps" if (cfg.save_steps or by_steps) else "epoch"
    save_steps = cfg.save_steps or (max(1, cfg.max_steps) if by_steps else None)
    use_bf16 = bf16_available(device) if cfg.bf16 is None else bool(cfg.bf16)
    args = TrainingArguments(
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
    clock: list[dict] = []
    trainer_cls = _make_trainer_class()
    trainer_cls.label_positions_only = cfg.label_positions_only
    trainer_cls.share_prefix = cfg.share_prefix and not cfg.gradient_checkpointing
    trainer = trainer_cls(
        model=peft_model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=(eval_datasets if len(eval_datasets) > 1 else next(iter(eval_datasets.values()), None)),
        data_collator=DynamicPaddingCollator(tokenizer.pad_token_id, pad_to=pad_to),
        processing_class=tokenizer,
        callbacks=[_make_callback(clock), *(callbacks or [])],
    )
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resumed_from = get_last_checkpoint(str(ckpt_dir)) if (resume and ckpt_dir.is_dir()) else None
    cpu0 = _cpu_seconds()
    output = trainer.train(resume_from_checkpoint=resumed_from)
    cpu_train = _cpu_seconds() - cpu0

    history = trainer.state.log_history
    eval_seconds = sum(h.get(k, 0.0) for h in history for k in h if k.endswith("_runtime") and k.startswith("eval"))
    train_runtime = float(output.metrics.get("train_runtime", 0.0))
    train_seconds = max(1e-9, train_runtime - eval_seconds)
    tokens = int(trainer.state.num_input_tokens_seen - getattr(trainer, "_initial_num_input_tokens_seen", 0))
    step_time = {c["step"]: c["seconds"] for c in clock}
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

    adapter_dir = out_dir / ADAPTER_DIRNAME
    # drop accelerate's mixed-precision forward wrapper: the returned model computes as loaded
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if trainer.is_world_process_zero():
        trained.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
    wall = time.perf_counter() - t_call
    tokens_per_s = round(tokens / train_seconds, 2) if tokens else 0.0
    peak = peak_rss_gb()
    previous = out_dir / LOG_FILENAME
    carried = False
    if not clock and resumed_from and previous.is_file():
        # resumed from the final checkpoint: nothing ran now, report the run that did the work
        prev = json.loads(previous.read_text())
        tokens, train_seconds, cpu_train = prev["tokens"], prev["train_seconds"], prev["cpu_seconds"]
        wall, tokens_per_s, peak = prev["wall_seconds"], prev["tokens_per_s"], prev["peak_rss_gb"]
        carried = True
    result = TrainResult(
        out_dir=str(out_dir),
        adapter_dir=str(adapter_dir),
        log_path=str(out_dir / LOG_FILENAME),
        config=cfg.to_dict(),
        n_examples=len(examples),
        n_eval_examples=sum(len(d) for d in eval_datasets.values()),
        data={"train": train_report.to_dict(), "eval": eval_reports},
        global_step=int(trainer.state.global_step),
        epochs_done=float(trainer.state.epoch or 0.0),
        train_loss=output.training_loss if tokens else None,
        final_loss=(sum(x["loss"] for x in steps[-3:]) / len(steps[-3:])) if steps else None,
        eval_loss=eval_loss,
        steps=steps,
        session_steps=[c["step"] for c in clock],
        evals=evals,
        tokens=tokens,
        train_seconds=round(train_seconds, 3),
        wall_seconds=round(wall, 3),
        cpu_seconds=round(cpu_train, 3),
        threads=torch.get_num_threads(),
        tokens_per_s=tokens_per_s,
        peak_rss_gb=peak,
        peak_gpu_gb=round(torch.cuda.max_memory_allocated() / 1e9, 3) if device == "cuda" else None,
        device=device + (" bf16" if use_bf16 else ""),
        resumed_from=resumed_from,
        stats_from_previous_run=carried,
        model=trained if keep_model else None,
    )
    if trainer.is_world_process_zero():
        tmp = out_dir / (LOG_FILENAME + ".tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str))
        os.replace(tmp, out_dir / LOG_FILENAME)
    return result


def load_training_log(path: str | Path) -> dict:
    """The training log of a run (a directory with ``training_log.json`` or the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILENAME
    return json.loads(path.read_text())


# =============================================================================================
# a profile run: previous stage in, adapter + log + manifest out
# =============================================================================================
def profile_parameters(profile: str) -> dict:
    """TrainConfig fields (and ``unseen_eval``) from ``notebooks/profiles/<profile>.yaml``
    (common + 03_training; ``student_model`` becomes ``base_model``)."""
    from .profiles import load_profile

    params = load_profile(profile, NOTEBOOK)
    out = {k: v for k, v in params.items() if k in TrainConfig.__dataclass_fields__ or k == "unseen_eval"}
    if "student_model" in params and "base_model" not in out:
        out["base_model"] = params["student_model"]
    return out


def run_training(profile: str, *, corpus: str | Path | None = None, out: str | Path | None = None,
                 unseen_eval: bool | None = None, resume: bool = True, progress: bool = False,
                 **overrides: Any) -> TrainResult:
    """Train on the simulation corpus of ``profile`` (or ``corpus``) with the profile's
    hyper-parameters (``overrides`` win), write the adapter, log and manifest to
    ``runs/<profile>/training/`` (or ``out``). ``unseen_eval`` also reports the loss on the
    corpus's eval split (tools never seen in training) at each evaluation."""
    from .runs import require_stage, stage_dir, write_manifest

    timings: dict[str, float] = {}
    corpus_dir = Path(corpus) if corpus is not None else require_stage(profile, "simulation")
    if not (corpus_dir / "tools.json").is_file():
        raise FileNotFoundError(f"{corpus_dir} is not a corpus directory (no tools.json)")
    params = {**profile_parameters(profile), **overrides}  # explicit None overrides too (e.g. all layers)
    if unseen_eval is None:
        unseen_eval = bool(params.pop("unseen_eval", False))
    params.pop("unseen_eval", None)
    cfg = TrainConfig(**params)
    records = load_tools(corpus_dir)
    train = load_split(corpus_dir, "train")
    if not train:
        raise EmptyCorpusError(f"{corpus_dir}/train.jsonl has no instances: nothing to train on")
    eval_sets = None
    if unseen_eval:
        fit, held = split_heldout(train, cfg.eval_fraction, cfg.seed)
        train = fit
        eval_sets = {"heldout": held, "unseen": load_split(corpus_dir, "eval")}
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
            inputs={"tools": corpus_dir / "tools.json", "train": corpus_dir / "train.jsonl"},
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
    same = lambda c: {k: v for k, v in c.items() if k != "num_threads"}  # noqa: E731
    if same(log.get("config") or {}) != same(cfg.to_dict()):
        return None
    known = {f.name for f in fields(TrainResult)} - {"model"}
    return TrainResult(**{**{k: v for k, v in log.items() if k in known}, "stats_from_previous_run": True})


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def synthetic_corpus(records: dict | list, instances: list[dict], n: int, *, n_tools: int | None = None,
                     seed: int = 0) -> tuple[dict, list[dict]]:
    """``n`` instances made from ``instances``, for benchmarks and budget estimates only (never to
    train a model that is evaluated), and the tool records they use. Each copy takes a random
    source instance and keeps a random number (at least one) of its steps before the final
    answer, so lengths vary as in a corpus of 1- to 3-step conversations. With ``n_tools`` the
    copies are spread over that many renamed clones of the source tools (``Name`` gets a ``#k``
    suffix, so each clone has its own system prompt), as a corpus of that many tools would be."""
    by_name = records if isinstance(records, dict) else {r["Name"]: r for r in records}
    rng = random.Random(seed)
    sources = [i for i in instances if i.get("steps") and i.get("final") and i.get("tool") in by_name]
    if not sources:
        raise EmptyCorpusError("no instance with steps and a final answer to replicate")
    out_records: dict[str, dict] = {} if n_tools else dict(by_name)
    by_tool: dict[str, list[dict]] = {}
    for inst in sources:
        by_tool.setdefault(inst["tool"], []).append(inst)
    tools = sorted(by_tool)
    out = []
    for k in range(n):
        if n_tools:  # clone j always copies the same source tool
            j = k % n_tools
            src = rng.choice(by_tool[tools[j % len(tools)]])
            tool = f"{src['tool']}#{j}"
            out_records.setdefault(tool, {**by_name[src["tool"]], "Name": tool})
        else:
            src = rng.choice(sources)
            tool = src["tool"]
        keep = rng.randint(1, len(src["steps"]))
        out.append({**src, "id": f"{src.get('id')}-syn{k:04d}", "tool": tool, "steps": list(src["steps"][:keep])})
    return out_records, out


def mask_preview(tokenizer, record: dict, instance: dict, max_length: int = 4096,
                 open_mark: str = "[[", close_mark: str = "]]") -> str:
    """The rendered training sequence with the loss-bearing tokens wrapped in markers, decoded
    from the labels themselves (what the notebook shows to explain the mask)."""
    ex = build_example(tokenizer, record, instance, max_length)
    parts, run, inside = [], [], None
    for tok, lab in zip(ex["input_ids"], ex["labels"]):
        bearing = lab != IGNORE_INDEX
        if inside is not None and bearing != inside:
            text = tokenizer.decode(run)
            parts.append(f"{open_mark}{text}{close_mark}" if inside else text)
            run = []
        run.append(tok)
        inside = bearing
    if run:
        text = tokenizer.decode(run)
        parts.append(f"{open_mark}{text}{close_mark}" if inside else text)
    return "".join(parts)


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


# =============================================================================================
# command line
# =============================================================================================
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
