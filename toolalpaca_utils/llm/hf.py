"""Local Hugging Face backend: the student model, with an optional LoRA adapter.

Loads a registry model with transformers — the embedded GGUF is dequantised to fp32 (134.5M
parameters), an HF id or directory is loaded as is (bf16 on a GPU) — and generates for batches
of chats with left padding and the model's own chat template. Greedy by default. It offers the
same ``chat`` call as :class:`~toolalpaca_utils.llm.client.ChatClient`, so agents and the
evaluation loop do not care which backend they hold.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from .client import ChatResult, parse_json_output
from .registry import DEFAULT_MODEL, resolve_model


def cache_root() -> Path:
    """Where converted weights live: ``$TOOLALPACA_CACHE`` or ``<repo>/.cache``."""
    return Path(os.environ.get("TOOLALPACA_CACHE", Path(__file__).resolve().parents[2] / ".cache"))


def hf_checkpoint(model: str = DEFAULT_MODEL) -> str:
    """A transformers-loadable path for ``model``. A GGUF is dequantised once (slow: about a
    minute on 2 cores) and saved as safetensors under :func:`cache_root`; later loads take a
    second. The write goes to a temporary folder renamed into place, so concurrent first
    loads cannot leave a half-written checkpoint."""
    spec = resolve_model(model)
    if spec.kind != "gguf":
        return spec.path
    target = cache_root() / "models" / spec.name
    if (target / "config.json").is_file():
        return str(target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{spec.name}-"))
    tmp.chmod(0o755)
    tokenizer = AutoTokenizer.from_pretrained(spec.gguf_dir, gguf_file=spec.gguf_file)
    lm = AutoModelForCausalLM.from_pretrained(spec.gguf_dir, gguf_file=spec.gguf_file, dtype="float32")
    # a model loaded from GGUF is flagged as quantized and refuses save_pretrained: copy its
    # (already dequantised) weights into a plain model of the same config
    config = lm.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype="float32")
    plain.load_state_dict(lm.state_dict())
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def load_model_and_tokenizer(model: str = DEFAULT_MODEL, *, device: str | None = None, dtype: Any = None):
    """(model, tokenizer) for a registry name, local directory or HF id; nothing is downloaded
    for the embedded model. The tokenizer pads on the left, as batched generation needs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    path = hf_checkpoint(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.generation_config.pad_token_id = tokenizer.pad_token_id
    return lm.to(device), tokenizer


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
        min_shared_prefix: int = 64,
    ):
        lm, tokenizer = load_model_and_tokenizer(model, device=device)
        if adapter:
            from peft import PeftModel

            lm = PeftModel.from_pretrained(lm, adapter)
        self._setup(lm, tokenizer, name=model if adapter is None else f"{model}+{adapter}",
                    max_batch_size=max_batch_size, max_input_tokens=max_input_tokens,
                    min_shared_prefix=min_shared_prefix)

    @classmethod
    def from_loaded(cls, model, tokenizer, *, name: str, max_batch_size: int = 8, max_input_tokens: int = 3072,
                    min_shared_prefix: int = 64) -> "LocalChatModel":
        """Wrap a model already in memory (e.g. one that was just trained)."""
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.use_cache = True
        chat = cls.__new__(cls)
        chat._setup(model, tokenizer, name=name, max_batch_size=max_batch_size, max_input_tokens=max_input_tokens,
                    min_shared_prefix=min_shared_prefix)
        return chat

    def _setup(self, model, tokenizer, *, name: str, max_batch_size: int, max_input_tokens: int,
               min_shared_prefix: int) -> None:
        import torch

        self.name, self.model, self.tokenizer = name, model.eval(), tokenizer
        self.device = next(self.model.parameters()).device
        self.max_batch_size = max_batch_size
        self.max_input_tokens = max_input_tokens
        self.min_shared_prefix = min_shared_prefix  # 0: never share, always left-pad
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
        # prompts of the same tool share a batch (their documentation is encoded once, see
        # generate), then similar lengths, so little compute goes to padding
        order = sorted(range(len(prompts)), key=lambda i: (_system_turn(chats[i]), len(prompts[i])))
        for start in range(0, len(order), self.max_batch_size):
            idx = order[start:start + self.max_batch_size]
            outs = self.generate([prompts[i] for i in idx], max_tokens=max_tokens,
                                 temperature=temperature, seed=seed, stop=stop)
            for i, out in zip(idx, outs):
                results[i] = out
        if schema is not None:
            for r in results:
                r.parsed = parse_json_output(r.text, schema, r.completion_tokens)
        return results  # type: ignore[return-value]

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

        When the prompts share a long prefix (the same tool's documentation in the system turn),
        it is encoded once and its key/value cache copied to every row; the rows then hold
        ``[prefix][padding][own suffix]``, the padding masked and the positions counted over real
        tokens only, so each row computes what it would alone. Otherwise rows are left-padded."""
        torch = self._torch
        torch.manual_seed(seed)
        rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"][-self.max_input_tokens:] for p in prompts]
        shared = _common_prefix_length(rows) if len(rows) > 1 else 0
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps a token to feed
        pad = self.tokenizer.pad_token_id
        gen_kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": pad}
        if temperature and temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=temperature)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            gen_kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        start = time.perf_counter()
        with torch.inference_mode():
            if self.min_shared_prefix and shared >= self.min_shared_prefix:
                input_ids, mask, cache = self._shared_prefix_batch(rows, shared)
                gen_kwargs["past_key_values"] = cache
            else:
                width = max(len(r) for r in rows)
                input_ids = [[pad] * (width - len(r)) + r for r in rows]
                mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
            input_ids = torch.tensor(input_ids, device=self.device)
            mask = torch.tensor(mask, device=self.device)
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **gen_kwargs)
        seconds = time.perf_counter() - start
        new_tokens = out[:, input_ids.shape[1]:]
        results = []
        eos = {self.tokenizer.eos_token_id, pad}
        for row, prompt in zip(new_tokens.tolist(), rows):
            n = next((k for k, t in enumerate(row) if t in eos), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            finish = "stop" if n < len(row) else "length"
            for s in stop or ():
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            results.append(ChatResult(text=text, finish_reason=finish, prompt_tokens=len(prompt),
                                      completion_tokens=n, seconds=seconds / len(prompts)))
        return results

    def _shared_prefix_batch(self, rows: list[list[int]], shared: int):
        """(input ids, attention mask, cache): the first ``shared`` tokens encoded once."""
        from transformers import DynamicCache

        torch = self._torch
        cache = DynamicCache()
        prefix = torch.tensor([rows[0][:shared]], device=self.device)
        self.model(input_ids=prefix, past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(len(rows))
        pad = self.tokenizer.pad_token_id
        width = max(len(r) for r in rows) - shared
        input_ids = [r[:shared] + [pad] * (width - len(r) + shared) + r[shared:] for r in rows]
        mask = [[1] * shared + [0] * (width - len(r) + shared) + [1] * (len(r) - shared) for r in rows]
        return input_ids, mask, cache


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
