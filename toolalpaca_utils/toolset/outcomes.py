"""What a run produces: one :class:`Attempt` per try, one :class:`ToolOutcome` per catalogue
entry (accepted record or reject with reasons), and the :class:`ToolsetResult` of a whole run.
(:class:`EndpointUnreachableError`, the early stop, is the shared one of :mod:`toolalpaca_utils.endpoint`.)"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from .. import openapi
from ..endpoint import EndpointUnreachableError  # noqa: F401 — re-exported: toolset.EndpointUnreachableError
from .gates import GateFailure
from .report import gate_table


@dataclass
class Attempt:
    """One try at documenting an entry: what the model wrote and which gates failed."""

    attempt: int
    seed: int
    temperature: float
    failures: list[GateFailure] = field(default_factory=list)     # decisive (attempt level)
    dropped: list[GateFailure] = field(default_factory=list)      # functions dropped, and why
    gates_checked: list[str] = field(default_factory=list)
    functions_checked: int = 0
    functions_kept: int = 0
    introduction: str | None = None
    functions: list | None = None
    raw_text: str = ""
    completion_tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = [dataclasses.asdict(f) for f in self.failures]
        d["dropped"] = [dataclasses.asdict(f) for f in self.dropped]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Attempt":
        d = dict(d)
        d["failures"] = [GateFailure(**f) for f in d.get("failures") or []]
        d["dropped"] = [GateFailure(**f) for f in d.get("dropped") or []]
        return cls(**d)


@dataclass
class ToolOutcome:
    """The result for one catalogue entry: an accepted record, or a reject with reasons."""

    key: str
    entry: dict
    record: dict | None = None
    attempts: list[Attempt] = field(default_factory=list)
    entry_failures: list[GateFailure] = field(default_factory=list)   # pre-LLM gates
    retryable: bool = False           # (older runs) failed only for want of an endpoint: never reused
    settings: str = ""                # fingerprint of the generation settings (for resume)

    @property
    def accepted(self) -> bool:
        return self.record is not None

    @property
    def failures(self) -> list[GateFailure]:
        """Failures of the decisive try: the entry gates, else the last attempt's (with the
        function-level reasons when no function survived)."""
        if self.entry_failures:
            return list(self.entry_failures)
        if not self.attempts:
            return []
        last = self.attempts[-1]
        extra = last.dropped if any(f.gate == "functions_present" for f in last.failures) else []
        return list(last.failures) + list(extra)

    @property
    def reasons(self) -> list[str]:
        """Every failure of every attempt, e.g. ``"attempt 2: descriptions: ..."``; dropped
        functions are listed as ``"attempt 1 (function dropped): ..."``."""
        out = [f"entry: {f}" for f in self.entry_failures]
        for a in self.attempts:
            out += [f"attempt {a.attempt + 1}: {f}" for f in a.failures]
            out += [f"attempt {a.attempt + 1} (function dropped): {f}" for f in a.dropped]
        return out

    @property
    def completion_tokens(self) -> int:
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)

    def reject_row(self) -> dict:
        """One row of the rejects table."""
        return {
            "key": self.key,
            "name": self.entry.get("name", ""),
            "category": self.entry.get("category", ""),
            "n_attempts": len(self.attempts),
            "gates": sorted({f.gate for f in self.failures}),
            "reasons": self.reasons,
            "retryable": self.retryable,
            "last_output": self.attempts[-1].raw_text[:1000] if self.attempts else "",
        }

    def to_json(self) -> dict:
        return {
            "key": self.key, "entry": self.entry, "record": self.record,
            "attempts": [a.to_json() for a in self.attempts],
            "entry_failures": [dataclasses.asdict(f) for f in self.entry_failures],
            "retryable": self.retryable, "settings": self.settings,
        }

    @classmethod
    def from_json(cls, d: dict) -> "ToolOutcome":
        return cls(
            key=d["key"], entry=d.get("entry") or {}, record=d.get("record"),
            attempts=[Attempt.from_json(a) for a in d.get("attempts") or []],
            entry_failures=[GateFailure(**f) for f in d.get("entry_failures") or []],
            retryable=bool(d.get("retryable")), settings=d.get("settings", ""),
        )


@dataclass
class ToolsetResult:
    """Every entry's outcome in entry order, with the run's time, resume count and LLM stats."""

    outcomes: list[ToolOutcome]
    seconds: float = 0.0
    resumed: int = 0                  # outcomes read back from progress.jsonl, not generated now
    stopped_early: str = ""           # why the run stopped before the last entry, if it did
    llm_stats: dict = field(default_factory=dict)

    @property
    def records(self) -> list[dict]:
        return [o.record for o in self.outcomes if o.accepted]

    @property
    def rejects(self) -> list[dict]:
        return [o.reject_row() for o in self.outcomes if not o.accepted]

    @property
    def n_accepted(self) -> int:
        return sum(o.accepted for o in self.outcomes)

    @property
    def n_rejected(self) -> int:
        return len(self.outcomes) - self.n_accepted

    @property
    def yield_pct(self) -> float:
        return round(100.0 * self.n_accepted / len(self.outcomes), 1) if self.outcomes else 0.0

    @property
    def categories(self) -> list[str]:
        return sorted({r["Category"] for r in self.records})

    @property
    def generation_seconds(self) -> float:
        """Seconds spent in attempts, resumed outcomes included (their recorded time): the cost
        of the toolset, whether it was generated in one run or resumed."""
        return round(sum(o.seconds for o in self.outcomes), 1)

    def gate_table(self) -> pd.DataFrame:
        """Per gate: how many entries/attempts/functions it checked and how many failed it."""
        return gate_table(self.outcomes)

    def summary(self) -> dict:
        attempts = [a for o in self.outcomes for a in o.attempts]
        return {
            "entries": len(self.outcomes),
            "accepted": self.n_accepted,
            "rejected": self.n_rejected,
            "yield_pct": self.yield_pct,
            "categories": len(self.categories),
            "attempts": len(attempts),
            "accepted_first_try": sum(1 for o in self.outcomes if o.accepted and len(o.attempts) == 1),
            "functions_in_tools": sum(len(openapi.record_functions(r)) for r in self.records),
            "functions_generated": sum(a.functions_checked for a in attempts),
            "functions_dropped": sum(a.functions_checked - a.functions_kept for a in attempts),
            "completion_tokens": sum(a.completion_tokens for a in attempts),
            "prompt_tokens": sum(a.prompt_tokens for a in attempts),
            "seconds": round(self.seconds, 1),
            "generation_seconds": self.generation_seconds,
            "resumed": self.resumed,
            "stopped_early": self.stopped_early,
        }
