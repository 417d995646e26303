"""Test doubles the test modules share: a scripted stand-in for the teacher model and an executor
that answers every call alike, so the loops' control flow is tested without a server."""
from __future__ import annotations

import http.server
import json

from typing import Callable

from toolalpaca_utils.agents import Observation
from toolalpaca_utils.llm import ChatResult, parse_json_output


class ScriptedModel:
    """Stands in for the teacher: replies with the given texts in turn, parsing schema output the
    way ChatClient does (so broken JSON raises LLMOutputError, as from the real server). Counts its
    ``calls`` and keeps every chat it was sent (``sent``) and every raw prompt (``prompts``, the
    chat prompt format's :meth:`complete`); a subclass answers by the request by overriding
    :meth:`reply` (a prompt comes to it as one user message)."""

    def __init__(self, texts=("",)):
        self.texts = list(texts) or [""]
        self.calls = 0
        self.sent: list[list[dict]] = []
        self.prompts: list[str] = []

    def reply(self, messages: list[dict], schema: dict | None) -> ChatResult:
        text = self.texts[(self.calls - 1) % len(self.texts)]
        result = ChatResult(text=text, completion_tokens=len(text) // 4)
        if schema is not None:
            result.parsed = parse_json_output(text, schema)
        return result

    def chat(self, messages, *, schema=None, **gen) -> ChatResult:
        self.calls += 1
        self.sent.append([dict(m) for m in messages])
        return self.reply(messages, schema)

    def complete(self, prompt: str, **gen) -> ChatResult:
        """The raw-completion twin of :meth:`chat`, as ChatClient.complete: the same replies in turn."""
        self.calls += 1
        self.prompts.append(prompt)
        return self.reply([{"role": "user", "content": prompt}], None)


def fixed_executor(status: int | Callable[[int], int], body: str):
    """An executor answering every call with ``Observation(status, body)``; ``status`` may be a
    function of the call's seed."""
    def execute(record, action, args, *, seed=0):
        return Observation(status(seed) if callable(status) else status, body)

    return execute


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """A quiet loopback HTTP handler; subclasses answer POSTs with :meth:`send_json`."""

    def send_json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
