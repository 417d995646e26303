"""Drivers that run episodes to their end: one call at a time (:func:`drive`,
:func:`run_assistant`) or many episodes per batch (:func:`run_episodes_batched`)."""
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
            result = client.chat(req.messages, schema=req.schema, **req.gen)
        except LLMError as exc:
            result = exc
        episode.feed(result)
    return episode.traj


def run_assistant(client: ChatModel, record: dict, instruction: str, executor, *,
                  user_client: ChatModel | None = None, **options) -> Trajectory:
    """Run one episode (see :class:`Episode` for the options) with ``client``."""
    return drive(client, Episode(record, instruction, executor, user_client=user_client or client, **options))


def run_episodes_batched(model, episodes: Sequence[Episode], *, progress: bool = False,
                         workers: int = 1) -> list[Trajectory]:
    """Drive many episodes with a batched model (``chat_batch``, e.g. LocalChatModel): at each
    round every unfinished episode's next call goes into one batch per generation setting.
    ``workers`` episodes at a time then take their results (and call their tools: a simulated
    tool is an LLM call, so this is where a teacher with several replicas helps)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    bar = tqdm(total=len(episodes), disable=not progress, desc="episodes")
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def feed(pair: tuple) -> None:
        pair[0].feed(pair[1])

    try:
        _batched_rounds(model, episodes, bar, pool, feed)
    finally:
        if pool is not None:
            pool.shutdown()
        bar.close()
    return [ep.traj for ep in episodes]


def _batched_rounds(model, episodes: Sequence[Episode], bar, pool, feed) -> None:
    while True:
        pending = [(ep, req) for ep in episodes if (req := ep.request()) is not None]
        if not pending:
            break
        groups: dict[tuple, list] = {}
        for ep, req in pending:
            key = (json.dumps(req.schema, sort_keys=True) if req.schema else None,
                   json.dumps({k: v for k, v in req.gen.items() if k != "seed"}, sort_keys=True))
            groups.setdefault(key, []).append((ep, req))
        for items in groups.values():
            gen = {k: v for k, v in items[0][1].gen.items() if k != "seed"}
            try:
                results = model.chat_batch([req.messages for _, req in items], **gen)
            except LLMError as exc:
                results = [exc] * len(items)
            fed = []
            for (ep, req), res in zip(items, results):
                if req.schema is not None and not isinstance(res, LLMError):
                    try:
                        res.parsed = parse_json_output(res.text, req.schema, res.completion_tokens)
                    except LLMError as exc:
                        res = exc
                fed.append((ep, res))
            was_done = [ep.done for ep, _ in fed]
            if pool is None:
                for pair in fed:
                    feed(pair)
            else:
                list(pool.map(feed, fed))  # re-raises an episode's exception here
            bar.update(sum(ep.done and not before for (ep, _), before in zip(fed, was_done)))
