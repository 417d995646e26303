"""Many entries: :func:`build_toolset` generates them in parallel with a progress bar, appends
every finished entry to ``progress.jsonl`` at once (a crashed or interrupted run resumes where it
stopped) and stops early when several entries in a row could not reach the endpoint."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Iterable

import pandas as pd

from .config import GenerationConfig
from .generate import entry_key, entry_seed, generate_tool, plain_entry
from .outcomes import EndpointUnreachableError, ToolOutcome, ToolsetResult
from .prompts import FUNCTIONS_PROMPT, INTRO_PROMPT, SYSTEM_PROMPT

PROGRESS_FILE = "progress.jsonl"


def settings_fingerprint(client: Any, config: GenerationConfig, max_retries: int, seed: int) -> str:
    """A short hash of everything that decides an entry's outcome (model, dialect, config,
    retries, seed, prompts): finished work is reused only under the same fingerprint."""
    who = {"model": getattr(client, "model", type(client).__name__), "dialect": getattr(client, "dialect", None)}
    blob = json.dumps({"who": who, "config": dataclasses.asdict(config), "max_retries": max_retries,
                       "seed": seed, "prompts": [SYSTEM_PROMPT, INTRO_PROMPT, FUNCTIONS_PROMPT]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_progress(path: str | Path) -> dict[str, ToolOutcome]:
    """Finished outcomes in ``progress.jsonl`` by key (the last line per key wins). A line cut
    off by a crash is ignored."""
    out: dict[str, ToolOutcome] = {}
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            o = ToolOutcome.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        out[o.key] = o
    return out


def build_toolset(
    client: Any,
    entries: pd.DataFrame | Iterable[dict],
    *,
    out_dir: str | Path,
    max_retries: int = 2,
    seed: int = 0,
    config: GenerationConfig | None = None,
    progress: bool = True,
    max_consecutive_endpoint_failures: int = 3,
    workers: int | None = None,
) -> ToolsetResult:
    """Document every entry; resume from ``out_dir/progress.jsonl``.

    ``workers`` entries are generated at once (default: ``client.parallelism``, one per server
    replica); outcomes are recorded in entry order whichever worker finishes first.

    Entries already finished with the same settings (model, config, retries, seed, prompts) are
    read back, not regenerated; entries that only failed because the endpoint was unreachable
    are retried. After ``max_consecutive_endpoint_failures`` entries in a row that could not
    reach the endpoint, raises :class:`EndpointUnreachableError` (finished work is kept).
    """
    from tqdm.auto import tqdm

    config = config or GenerationConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress_path = out_dir / PROGRESS_FILE
    settings = settings_fingerprint(client, config, max_retries, seed)
    done = _reusable_outcomes(progress_path, settings)
    rows = _entry_rows(entries)
    start = time.perf_counter()
    bar = tqdm(total=len(rows), desc="toolset", unit="tool", disable=not progress)
    result = ToolsetResult(outcomes=[])
    source = _OutcomeSource(
        client, [e for e in rows if entry_key(e) not in done], max_retries=max_retries, seed=seed,
        config=config, workers=max(1, workers or getattr(client, "parallelism", 1)),
    )
    try:
        with progress_path.open("a", encoding="utf-8") as fh:
            _run_entries(rows, done, source, result, fh=fh, bar=bar, settings=settings,
                         max_consecutive=max_consecutive_endpoint_failures)
    finally:
        source.close()
        bar.close()
        _finish(result, start, client)
    if result.stopped_early:
        raise EndpointUnreachableError(result.stopped_early + f"; finished work is kept in {progress_path}", result)
    return result


def _reusable_outcomes(progress_path: Path, settings: str) -> dict[str, ToolOutcome]:
    """Finished outcomes to read back: same settings, and not failed only for want of an endpoint."""
    return {k: o for k, o in read_progress(progress_path).items()
            if o.settings == settings and not o.retryable}


def _entry_rows(entries: pd.DataFrame | Iterable[dict]) -> list[dict]:
    """The entries (a catalogue frame or dicts) as JSON-friendly dicts, in order."""
    return [plain_entry(e) for e in (entries.to_dict("records") if isinstance(entries, pd.DataFrame) else entries)]


class _OutcomeSource:
    """Generates the entries still to do, handing back their outcomes in entry order: one at a
    time, or in a thread pool with at most ``workers`` jobs in flight (so an early stop wastes
    little)."""

    def __init__(self, client: Any, todo: list[dict], *, max_retries: int, seed: int,
                 config: GenerationConfig, workers: int):
        self.client, self.max_retries, self.seed, self.config = client, max_retries, seed, config
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.pending = deque(todo)
        self.futures: deque[Future] = deque()

    def _generate(self, entry: dict) -> ToolOutcome:
        return generate_tool(self.client, entry, max_retries=self.max_retries,
                             seed=entry_seed(entry, self.seed), config=self.config)

    def next_outcome(self) -> ToolOutcome:
        if self.pool is None:
            return self._generate(self.pending.popleft())
        while self.pending and len(self.futures) < self.workers:
            self.futures.append(self.pool.submit(self._generate, self.pending.popleft()))
        return self.futures.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _run_entries(rows: list[dict], done: dict[str, ToolOutcome], source: _OutcomeSource,
                 result: ToolsetResult, *, fh: IO[str], bar: Any, settings: str, max_consecutive: int) -> None:
    """Walk the entries in order into ``result``: read finished ones back, generate the others
    and append each to the progress file at once; after ``max_consecutive`` entries in a row
    that could not reach the endpoint, set ``result.stopped_early`` and stop."""
    outcomes = result.outcomes
    consecutive = 0
    for entry in rows:
        key = entry_key(entry)
        if key in done:
            outcomes.append(done[key])
            result.resumed += 1
        else:
            outcome = source.next_outcome()
            outcome.settings = settings
            outcomes.append(outcome)
            fh.write(json.dumps(outcome.to_json(), ensure_ascii=False, default=str) + "\n")
            fh.flush()
            consecutive = consecutive + 1 if outcome.retryable else 0
        bar.update(1)
        bar.set_postfix(accepted=sum(o.accepted for o in outcomes),
                        rejected=sum(not o.accepted for o in outcomes))
        if consecutive >= max_consecutive:
            last = outcomes[-1].failures[-1].reason if outcomes[-1].failures else "unknown"
            result.stopped_early = (
                f"stopped after {consecutive} consecutive entries could not reach the LLM endpoint "
                f"({len(outcomes)} of {len(rows)} entries seen); last error: {last}"
            )
            break


def _finish(result: ToolsetResult, start: float, client: Any) -> None:
    """Stamp the run's wall time and the client's LLM statistics on ``result``."""
    result.seconds = time.perf_counter() - start
    stats = getattr(client, "stats", None)
    result.llm_stats = stats.as_dict() if hasattr(stats, "as_dict") else {}
