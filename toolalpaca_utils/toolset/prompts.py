"""The prompts the teacher gets (our own wording): the introduction, then the functions in the
same conversation, so the server reuses the shared prompt prefix."""
from __future__ import annotations

from .config import GenerationConfig


SYSTEM_PROMPT = (
    "You are a technical writer who documents web APIs for developers. "
    "You write short, concrete, plain English."
)

INTRO_PROMPT = (
    "Write two sentences that introduce the {name} API ({category}) to a developer. "
    "The API is listed as: \"{description}\". "
    "Say what data it offers and what an application can do with it. "
    "Start with \"The {name} API\"."
)

FUNCTIONS_PROMPT = (
    "Now write the functions of the {name} API as JSON, 1 to {max_functions} of them. "
    "Each function does something different. "
    "A function name is a verb and a noun in camelCase. "
    "Give each function a short description (under 12 words), its input parameters "
    "(name, type, whether required, meaning) and its output (a short description and the fields it returns). "
    "Inputs and outputs are plain text or numbers."
)


def intro_messages(entry: dict) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": INTRO_PROMPT.format(**_prompt_fields(entry))},
    ]


def functions_messages(entry: dict, introduction: str, config: GenerationConfig) -> list[dict]:
    """The intro conversation continued: the server reuses the shared prompt prefix."""
    return intro_messages(entry) + [
        {"role": "assistant", "content": introduction},
        {"role": "user", "content": FUNCTIONS_PROMPT.format(max_functions=config.max_functions, **_prompt_fields(entry))},
    ]


def _prompt_fields(entry: dict) -> dict:
    return {k: str(entry.get(k) or "").strip() for k in ("name", "category", "description")}
