"""Drivers that run an episode to its end, one model call at a time (:func:`drive`,
:func:`run_assistant`); many episodes run at once in threads (:func:`toolalpaca_utils.parallel.run_parallel`)."""
from __future__ import annotations

import json
from typing import Sequence

from ..llm import LLMError, parse_json_output
from .episode import Episode, Trajectory
from .protocol import ChatModel


def drive(client: ChatModel, episode: Episode) -> Trajectory:
    """Run an episode to its end, one model call at a time."""
    while (req := episode.request()) is not None:
        try:
            if req.prompt is not None:  # the chat format: a prompt the episode rendered itself
                result = client.complete(req.prompt, **req.gen)
            else:
                result = client.chat(req.messages, schema=req.schema, **req.gen)
        except LLMError as exc:
            result = exc
        episode.feed(result)
    return episode.traj


def run_assistant(client: ChatModel, record: dict, instruction: str, executor, *,
                  user_client: ChatModel | None = None, **options) -> Trajectory:
    """Run one episode (see :class:`Episode` for the options) with ``client``."""
    return drive(client, Episode(record, instruction, executor, user_client=user_client or client, **options))
