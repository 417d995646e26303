"""Training sequences: one chat instance becomes one token sequence whose labels cover only the
assistant turns (Thought / Action / Action Input steps and the final answer, each with its
end-of-turn token); everything else is ``-100``. Two prompt formats: "react", the ReAct text of
the papers (the default), and "chat", the tool-calling chat of :mod:`.chat_template`. Also the batch collator (dynamic padding, or a
fixed ``pad_to`` for the reference recipe) and the notebook's mask preview.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from ..corpus import trajectory_turns
from ..react import build_messages

IGNORE_INDEX = -100


class EmptyCorpusError(ValueError):
    """No usable training instance (an empty split, or every instance dropped)."""


class TemplateMismatchError(ValueError):
    """The chat template does not render the assistant turns in a way that can be located."""


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


PROMPT_FORMATS = ("react", "chat")


def _react_tokens(tokenizer, record: dict, instance: dict) -> tuple[list[int], list[int], list[int], bool, int]:
    """(ids, labels, span ends, segmented, system-turn tokens) of the ReAct chat of the papers."""
    messages = instance_messages(record, instance)
    text, spans = assistant_char_spans(tokenizer, messages)
    ids, labels, span_ends, segmented = _label_tokens(tokenizer, text, spans)
    return ids, labels, span_ends, segmented, 0 if segmented else _system_prefix_len(tokenizer, messages, text, ids)


def _chat_tokens(tokenizer, record: dict, instance: dict) -> tuple[list[int], list[int], list[int], bool, int]:
    """The same, in the tool-calling chat format: the messages + tools conversation of
    :func:`toolalpaca_utils.formats.to_messages` rendered by the training chat template, the
    labels being its ``{% generation %}`` spans (each assistant turn, its calls and ``<|im_end|>``)."""
    from ..formats import to_messages
    from .chat_template import TRAINING_CHAT_TEMPLATE

    row = to_messages(instance, record)
    kw = {"tools": row["tools"], "chat_template": TRAINING_CHAT_TEMPLATE, "return_dict": True}
    out = tokenizer.apply_chat_template(row["messages"], return_assistant_tokens_mask=True, **kw)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    span_ends = [i + 1 for i, m in enumerate(mask) if m and (i + 1 == len(mask) or not mask[i + 1])]
    system = list(tokenizer.apply_chat_template(row["messages"][:1], **kw)["input_ids"])
    return ids, labels, span_ends, False, len(system) if ids[:len(system)] == system else 0


def build_example(tokenizer, record: dict, instance: dict, max_length: int, prompt_format: str = "react") -> dict:
    """One training sequence for ``instance`` of tool ``record``, in ``prompt_format``: "react"
    (the ReAct text of the papers, as evaluation prompts the student) or "chat" (the tokenizer's
    tool-calling chat, :mod:`.chat_template`).

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
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    tokens = _react_tokens if prompt_format == "react" else _chat_tokens
    ids, labels, span_ends, segmented, prefix_len = tokens(tokenizer, record, instance)
    full_len = len(ids)
    n_turns = len(span_ends)
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
    prefix_len = prefix_len if prefix_len < len(ids) else 0  # the system turn must leave tokens after it
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
                   *, what: str = "training", prompt_format: str = "react") -> tuple[list[dict], BuildReport]:
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
        ex = build_example(tokenizer, record, inst, max_length, prompt_format)
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



def mask_preview(tokenizer, record: dict, instance: dict, max_length: int = 4096,
                 open_mark: str = "[[", close_mark: str = "]]", prompt_format: str = "react") -> str:
    """The rendered training sequence with the loss-bearing tokens wrapped in markers, decoded
    from the labels themselves (what the notebook shows to explain the mask)."""
    ex = build_example(tokenizer, record, instance, max_length, prompt_format)
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
