"""The episode's prompt in the tool-calling chat format (``prompt_format="chat"``).

The history so far becomes messages with ``tool_calls`` and ``tool`` turns plus the tool's
function schemas, built by the very converter that wrote the student's training conversations
(:func:`toolalpaca_utils.formats.conversation`), and is rendered to text with the training chat
template (:data:`~toolalpaca_utils.training.chat_template.TRAINING_CHAT_TEMPLATE`) for a raw
completion (:meth:`~toolalpaca_utils.llm.ChatClient.complete`).

Why the episode renders it and not the server: the engine serving the student (llama.cpp with
the GGUF's stock SmolLM2 template, or vLLM with the checkpoint's) would apply a template that has
no tools block and drops tool calls, i.e. not the text the student was trained on.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

from ..formats.chat import conversation
from ..llm.registry import DEFAULT_MODEL

PROMPT_FORMATS = ("react", "chat")
#: where a ChatML assistant turn ends (the template is ChatML: see ``with_training_template``)
CHAT_STOP = ["<|im_end|>", "<|im_start|>"]
#: the chat-format counterpart of the ReAct FINAL_NUDGE (which asks for "Thought / Final Answer")
CHAT_FINAL_NUDGE = "You have the information you need. Answer the user's request now, without calling a function."

Renderer = Callable[[list, list], str]


def check_prompt_format(prompt_format: str) -> str:
    """``prompt_format`` when it is one the project knows, else a ValueError that lists them."""
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS} (react: the papers' ReAct text; chat: "
                         f"the tool-calling chat of the training template), got {prompt_format!r}")
    return prompt_format


def check_chat_options(prompt_format: str, mode: str, *, scaffold: bool = False, system: str | None = None) -> None:
    """A clear ValueError for what the chat format does not support: grammar-constrained decoding
    (its schema is the ReAct step's JSON, not a ``<tool_call>``), the ReAct scaffold's worked
    examples and a replaced system prompt (the chat's system turn is the one training wrote)."""
    if check_prompt_format(prompt_format) != "chat":
        return
    if mode != "free":
        raise ValueError(f'{mode} decoding needs prompt_format "react": the chat format decodes free text '
                         f'(leave "{mode}" out of the decodings, or evaluate in ReAct)')
    if scaffold or system is not None:
        raise ValueError('the scaffold and a custom system prompt are ReAct-only; prompt_format "chat" uses the '
                         "system turn and tools block of the training template")


def chat_messages(record: dict, instruction: str, steps: Sequence) -> list[dict]:
    """The chat of an episode so far: system, the instruction, and each recorded step (a
    :class:`~toolalpaca_utils.agents.episode.Step`) as a call + tool turn, or, when it was not a
    well-formed call, as its raw reply + the corrective observation in a user turn, exactly as
    training renders a corpus instance."""
    instance = {"tool": record["Name"], "instruction": instruction, "final": None,
                "steps": [s.as_dict() if hasattr(s, "as_dict") else dict(s) for s in steps]}
    return conversation(instance, record)


class ChatRenderer:
    """``render(messages, tools) -> str``: the prompt text of a chat, ending with the opened
    assistant turn, as the training chat template writes it."""

    def __init__(self, tokenizer):
        from ..training.chat_template import TRAINING_CHAT_TEMPLATE, with_training_template

        with_training_template(tokenizer)  # refuses a tokenizer that is not ChatML
        self.tokenizer, self.template = tokenizer, TRAINING_CHAT_TEMPLATE

    def __call__(self, messages: list, tools: list) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tools=tools, chat_template=self.template,
                                                  tokenize=False, add_generation_prompt=True)


@functools.lru_cache(maxsize=4)
def chat_renderer(model: str = DEFAULT_MODEL) -> ChatRenderer:
    """The renderer of ``model`` (a registry name, local path or HF id), with the tokenizer
    training used (:func:`~toolalpaca_utils.llm.hf.hf_checkpoint`'s); loaded once per model."""
    from transformers import AutoTokenizer

    from ..llm.hf import hf_checkpoint

    return ChatRenderer(AutoTokenizer.from_pretrained(hf_checkpoint(model)))
