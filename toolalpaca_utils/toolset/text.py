"""Small text helpers: normalised comparison keys, camelCase splitting, and the clean-up of a
generated introduction."""
from __future__ import annotations

import re


def norm(text: str) -> str:
    """Lower-case letters and digits only: the key under which near-identical texts compare equal."""
    return re.sub(r"[^a-z0-9]+", "", str(text or "").lower())


def split_camel(name: str) -> str:
    """``getCatFacts`` → ``get cat facts``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name)).replace("_", " ").lower()


_LABEL = re.compile(r"^\s*(introduction|intro|answer|response)\s*:\s*", re.IGNORECASE)


def clean_introduction(text: str, max_chars: int = 400) -> str:
    """Strip labels and markup, drop repeated sentences, keep whole sentences up to ``max_chars``."""
    text = _LABEL.sub("", str(text or "")).replace("**", "").replace("#", "")
    text = re.sub(r"\s+", " ", text).strip().strip('"').strip()
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept: list[str] = []
    seen: set[str] = set()
    for s in sentences:
        key = norm(s)
        if not key or key in seen or len(re.findall(r"[A-Za-z]{2,}", s)) < 2:  # repeats, list numbers
            continue
        if kept and len(" ".join(kept + [s])) > max_chars:
            break
        seen.add(key)
        kept.append(s)
    out = " ".join(kept)
    if len(out) > max_chars:
        out = out[:max_chars].rsplit(" ", 1)[0]
    if out and out[-1] not in ".!?" and re.search(r"[.!?]", out):
        out = out[: max(out.rfind("."), out.rfind("!"), out.rfind("?")) + 1]  # drop a cut-off sentence
    return out.strip()
