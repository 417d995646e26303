"""The one interface every agent talks to a model through."""
from __future__ import annotations

from typing import Any, Protocol, Sequence


class ChatModel(Protocol):
    def chat(self, messages: Sequence[dict], *, schema: dict | None = None, **gen: Any): ...
