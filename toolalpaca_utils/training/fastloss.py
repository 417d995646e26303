"""Cheaper training steps with the same loss. :func:`assistant_loss` applies the LM head only at
loss-bearing positions and, for rows that start with the same system turn (one tool's
conversations), computes that prefix once with its keys/values shared by every row;
:class:`ToolGroupedSampler` builds such batches. Both are exact: a test checks the loss and
gradients against the stock computation.
"""
from __future__ import annotations

import random

from .sequences import IGNORE_INDEX

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
    suffix = decoder(input_ids=ids[:, shared:width], attention_mask=mask[:, :width], cache=cache,
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
