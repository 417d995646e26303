"""Pinned copy of the removed in-process student path: ``LocalChatModel`` of
``toolalpaca_utils/llm/hf.py`` as it was at commit c862be3, with the helpers it needs
(``_preallocated_layer``, ``_preallocated_layer_class``, ``_system_turn``,
``_common_prefix_length``; ``bf16_available`` for its ``dtype="auto"`` comes from the package).

Kept only as the baseline of ``benchmarks/eval_throughput.py`` (the served student against the
in-process one it replaces); nothing in the package imports it. The code below is unchanged from
that commit apart from this docstring and the imports, which now point into the package.
"""
from __future__ import annotations

import functools
import time
from collections import OrderedDict
from typing import Any, Sequence

from toolalpaca_utils.llm.client import ChatResult, parse_json_output
from toolalpaca_utils.llm.hf import bf16_available, load_model_and_tokenizer, peft_model
from toolalpaca_utils.llm.registry import DEFAULT_MODEL

PINNED_FROM = "c862be3:toolalpaca_utils/llm/hf.py"


class LocalChatModel:
    """Batched chat generation with a local transformers model (+ optional peft adapter)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        adapter: str | None = None,
        device: str | None = None,
        max_batch_size: int = 8,
        max_input_tokens: int = 3072,
        min_shared_prefix: int = 32,
        prefix_cache_tokens: int = 65536,
        dtype: Any = "auto",
    ):
        """``dtype`` "auto": bf16 where the device computes it natively (a GPU, a CPU with
        AVX512-BF16/AMX: measured 1.9x faster generation here than fp32), else fp32; or a torch
        dtype. Training never uses this wrapper's weights, so the rounding stays at inference.
        ``prefix_cache_tokens``: encoded prompt prefixes kept between calls (0: none); about 23 kB
        per token for SmolLM2-135M in bf16."""
        import torch

        if dtype == "auto":
            target = device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = torch.bfloat16 if bf16_available(target) else None
        lm, tokenizer = load_model_and_tokenizer(model, device=device, dtype=dtype)
        if adapter:
            lm = peft_model(lm, adapter)
        self._setup(lm, tokenizer, name=model if adapter is None else f"{model}+{adapter}",
                    max_batch_size=max_batch_size, max_input_tokens=max_input_tokens,
                    min_shared_prefix=min_shared_prefix, prefix_cache_tokens=prefix_cache_tokens)

    @classmethod
    def from_loaded(cls, model, tokenizer, *, name: str, max_batch_size: int = 8, max_input_tokens: int = 3072,
                    min_shared_prefix: int = 32, prefix_cache_tokens: int = 65536) -> "LocalChatModel":
        """Wrap a model already in memory (e.g. one that was just trained)."""
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.use_cache = True
        chat = cls.__new__(cls)
        chat._setup(model, tokenizer, name=name, max_batch_size=max_batch_size, max_input_tokens=max_input_tokens,
                    min_shared_prefix=min_shared_prefix, prefix_cache_tokens=prefix_cache_tokens)
        return chat

    def _setup(self, model, tokenizer, *, name: str, max_batch_size: int, max_input_tokens: int,
               min_shared_prefix: int, prefix_cache_tokens: int) -> None:
        import torch

        self.name, self.model, self.tokenizer = name, model.eval(), tokenizer
        self.device = next(self.model.parameters()).device
        self.max_batch_size = max_batch_size
        self.max_input_tokens = max_input_tokens
        self.min_shared_prefix = min_shared_prefix  # 0: never share, always left-pad
        self.prefix_cache_tokens = prefix_cache_tokens
        self._prefix_cache: OrderedDict[tuple[int, ...], list] = OrderedDict()
        self._torch = torch

    def render(self, messages: Sequence[dict]) -> str:
        """The prompt text for a chat, ending with the assistant turn's header."""
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def chat(self, messages: Sequence[dict], *, schema: dict | None = None, **gen) -> ChatResult:
        return self.chat_batch([messages], schema=schema, **gen)[0]

    def chat_batch(
        self,
        chats: Sequence[Sequence[dict]],
        *,
        schema: dict | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
        **_ignored: Any,
    ) -> list[ChatResult]:
        """Generate for many chats, ``max_batch_size`` at a time. Unconstrained: with a
        ``schema`` the output is parsed and validated afterwards (LLMOutputError if it fails)."""
        prompts = [self.render(m) for m in chats]
        results: list[ChatResult | None] = [None] * len(prompts)
        for idx in self._batches(chats, prompts):
            outs = self.generate([prompts[i] for i in idx], max_tokens=max_tokens,
                                 temperature=temperature, seed=seed, stop=stop)
            for i, out in zip(idx, outs):
                results[i] = out
        if schema is not None:
            for r in results:
                r.parsed = parse_json_output(r.text, schema, r.completion_tokens)
        return results  # type: ignore[return-value]

    def _batches(self, chats: Sequence[Sequence[dict]], prompts: Sequence[str]) -> list[list[int]]:
        """Indices per batch, ``max_batch_size`` at a time: chats with the same system turn (one
        tool's documentation) next to each other, so a batch holds few distinct prefixes."""
        order = sorted(range(len(prompts)), key=lambda i: (_system_turn(chats[i]), len(prompts[i])))
        size = self.max_batch_size
        return [order[k:k + size] for k in range(0, len(order), size)]

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
    ) -> list[ChatResult]:
        """One batch of already-rendered prompts.

        A decoding step reads the weights once for the whole batch, and every live row's cache;
        reading the prompts is bound by compute, so no token should be read twice. Hence: rows
        that share a prefix (one tool's documentation) form a group whose prefix is encoded once
        (a lone row: its whole prompt but the last token); the groups' key/value caches are
        left-padded to one length and stacked; the rows then continue with
        ``[padding][own suffix]``. Padding is masked and positions count real tokens only, so
        each row computes what it would alone (tested). Prefixes are kept between calls
        (:meth:`_encode_prefix`), and a row that has ended leaves the batch (:meth:`_decode`).
        ``min_shared_prefix`` 0: plain left padding."""
        torch = self._torch
        torch.manual_seed(seed)
        rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"][-self.max_input_tokens:] for p in prompts]
        pad = self.tokenizer.pad_token_id
        start = time.perf_counter()
        with torch.inference_mode():
            if self.min_shared_prefix:
                input_ids, mask, cache = self._prefix_cached_batch(rows, extra_tokens=max_tokens)
            else:
                from transformers import DynamicCache

                width = max(len(r) for r in rows)
                input_ids = [[pad] * (width - len(r)) + r for r in rows]
                mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
                cache = DynamicCache()
            input_ids = torch.tensor(input_ids, device=self.device)
            mask = torch.tensor(mask, device=self.device)
            generated, stopped = self._decode(input_ids, mask, cache, max_tokens=max_tokens,
                                              temperature=temperature, stop=list(stop or ()))
        seconds = time.perf_counter() - start
        results = []
        for tokens, ended, prompt in zip(generated, stopped, rows):
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            finish = "stop" if ended else "length"
            for s in stop or ():
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            results.append(ChatResult(text=text, finish_reason=finish, prompt_tokens=len(prompt),
                                      completion_tokens=len(tokens), seconds=seconds / len(prompts)))
        return results

    def _decode(self, input_ids, mask, cache, *, max_tokens: int, temperature: float, stop: list[str]):
        """Token by token until every row has ended (end of turn, a stop string, ``max_tokens``);
        a row that has ended leaves the batch at once. (HF ``generate`` keeps computing finished
        rows until the last one ends: one rambling row kept a whole batch busy.) Positions count
        the real tokens of each row (the mask), so padding anywhere changes nothing."""
        torch = self._torch
        eos = self._end_ids()
        n = input_ids.shape[0]
        generated: list[list[int]] = [[] for _ in range(n)]
        stopped = [False] * n
        alive = list(range(n))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past = cache.get_seq_length()
        feed, feed_positions, last = input_ids[:, past:], positions[:, past:], positions[:, -1]
        tail = max(map(len, stop), default=0) + 2  # tokens enough to hold any stop string
        for step in range(max_tokens):
            logits = self.model(input_ids=feed, attention_mask=mask, position_ids=feed_positions,
                                cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
            if temperature and temperature > 0:
                nxt = torch.multinomial(torch.softmax(logits.float() / temperature, dim=-1), 1)[:, 0]
            else:
                nxt = logits.argmax(-1)
            keep = []
            for j, (row, token) in enumerate(zip(alive, nxt.tolist())):
                if token in eos:
                    stopped[row] = True
                    continue
                generated[row].append(token)
                if stop and any(s in self.tokenizer.decode(generated[row][-tail:]) for s in stop):
                    stopped[row] = True
                    continue
                keep.append(j)
            if not keep or step == max_tokens - 1:
                break
            if len(keep) < len(alive):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                alive = [alive[j] for j in keep]
                mask, nxt, last = mask[index], nxt[index], last[index]
            mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
            last = last + 1
            feed, feed_positions = nxt[:, None], last[:, None]
        return generated, stopped

    def _end_ids(self) -> set[int]:
        """Token ids that end a turn: the tokenizer's and the generation config's end tokens."""
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return {i for i in ids if i is not None}

    def _prefix_groups(self, rows: list[list[int]]) -> list[tuple[list[int], int]]:
        """(row indices, prefix length) per group of rows sharing >= ``min_shared_prefix`` tokens."""
        groups: list[list[int]] = []
        for i in sorted(range(len(rows)), key=lambda i: rows[i]):  # shared prefixes end up adjacent
            if groups and _common_prefix_length([rows[groups[-1][0]], rows[i]]) >= self.min_shared_prefix:
                groups[-1].append(i)
            else:
                groups.append([i])
        # every row keeps at least one token to feed
        return [(g, min(_common_prefix_length([rows[i] for i in g]), min(len(rows[i]) for i in g) - 1))
                for g in groups]

    def _encode_prefix(self, tokens: tuple[int, ...]) -> list[tuple]:
        """Key/value states of ``tokens`` (batch of one), per layer. Encoded prefixes are kept
        (least recently used out, ``prefix_cache_tokens`` in all) and a new prefix starts from
        the longest kept one it extends: a tool's documentation is read once per evaluation, not
        once per batch and step, and an episode's next step reads only its new turns."""
        from transformers import DynamicCache

        kept = self._prefix_cache
        if tokens in kept:
            kept.move_to_end(tokens)
            return kept[tokens]
        base = max((k for k in kept if len(k) < len(tokens) and tokens[:len(k)] == k), key=len, default=())
        cache = DynamicCache(ddp_cache_data=kept[base]) if base else DynamicCache()  # cat: base stays intact
        if base:
            kept.move_to_end(base)
        self.model(input_ids=self._torch.tensor([tokens[len(base):]], device=self.device), cache=cache,
                   use_cache=True)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        if self.prefix_cache_tokens:
            kept[tokens] = layers
            while sum(map(len, kept)) > self.prefix_cache_tokens and len(kept) > 1:
                kept.popitem(last=False)
        return layers

    def clear_prefix_cache(self) -> None:
        """Forget the encoded prefixes (needed only if the model's weights change in place)."""
        self._prefix_cache.clear()

    def _prefix_cached_batch(self, rows: list[list[int]], extra_tokens: int = 0):
        """(input ids, attention mask, cache) with every group's prefix encoded once; the cache
        has room for the prompts and ``extra_tokens`` more without reallocating."""
        from transformers import DynamicCache

        torch = self._torch
        groups = self._prefix_groups(rows)
        longest = max(n for _, n in groups)
        per_row: list = [None] * len(rows)
        prefix_len = [0] * len(rows)
        for members, n in groups:
            if n == 0:
                continue
            layers = self._encode_prefix(tuple(rows[members[0]][:n]))
            for i in members:
                per_row[i], prefix_len[i] = layers, n
        template = next(kv for kv in per_row if kv is not None)
        stacked = []
        for layer, (k0, v0) in enumerate(template):
            keys, values = [], []
            for i in range(len(rows)):
                if per_row[i] is None:
                    k = v = k0.new_zeros(k0.shape[:2] + (longest,) + k0.shape[3:])
                else:
                    k, v = per_row[i][layer]
                    fill = k0.new_zeros(k0.shape[:2] + (longest - prefix_len[i],) + k0.shape[3:])
                    k, v = torch.cat([fill, k], dim=2), torch.cat([fill, v], dim=2)
                keys.append(k)
                values.append(v)
            stacked.append((torch.cat(keys), torch.cat(values)))
        pad = self.tokenizer.pad_token_id
        width = max(len(r) - n for r, n in zip(rows, prefix_len))
        input_ids, mask = [], []
        for r, n in zip(rows, prefix_len):
            lead, gap, tail = longest - n, width - (len(r) - n), len(r) - n
            input_ids.append([pad] * lead + r[:n] + [pad] * gap + r[n:])
            mask.append([0] * lead + [1] * n + [0] * gap + [1] * tail)
        cache = DynamicCache()
        cache.layers = [_preallocated_layer(k, v, longest + width + extra_tokens) for k, v in stacked]
        return input_ids, mask, cache


def _preallocated_layer(keys, values, capacity: int):
    """A key/value cache layer holding ``keys``/``values`` in buffers of ``capacity`` positions.

    transformers' DynamicLayer appends by ``torch.cat``: every decoding step copies the whole
    cache of every layer. With 24 rows of ~1,100-token prompts that copy (0.7 GB per step for
    SmolLM2-135M) costs more than the model itself. Writing into a buffer allocated once and
    handing attention a view of its filled part computes the same thing without the copies."""
    layer = _preallocated_layer_class()(capacity)
    layer.update(keys, values)
    return layer


@functools.lru_cache(maxsize=None)
def _preallocated_layer_class():
    import torch
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity

        def lazy_initialization(self, key_states, value_states):
            super().lazy_initialization(key_states, value_states)
            shape = key_states.shape[:2] + (max(self.capacity, key_states.shape[2]),) + key_states.shape[3:]
            self._k, self._v, self._n = key_states.new_empty(shape), value_states.new_empty(shape), 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n, m = self._n, key_states.shape[-2]
            if n + m > self._k.shape[-2]:  # more than announced: grow (amortised), never fail
                grow = max(n + m, 2 * self._k.shape[-2]) - self._k.shape[-2]
                pad = self._k.new_empty(self._k.shape[:2] + (grow,) + self._k.shape[3:])
                self._k, self._v = torch.cat([self._k, pad], dim=2), torch.cat([self._v, pad], dim=2)
            self._k[:, :, n:n + m] = key_states
            self._v[:, :, n:n + m] = value_states
            self._n = n + m
            self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]
            return self.keys, self.values

        def batch_select_indices(self, indices):
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]

    return PreallocatedLayer


def _system_turn(messages: Sequence[dict]) -> str:
    return next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")


def _common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for i in range(n):
        t = first[i]
        if any(r[i] != t for r in rows):
            return i
    return n
