"""Teacher-endpoint failures: one classification, and one way every stage lives through them.

A work item (a catalogue entry, a tool) that fails because the teacher's *endpoint* failed is
not the model's fault: connection refused, a timeout, the embedded server crashed, HTTP 5xx,
401/403/404 (no key, no access, no such model), 408 or 429. Such an item must not become a
reject — resume skips rejects, so one server restart would turn every remaining tool into one —
it must be tried again. What the model answered badly (:class:`LLMOutputError`, unparseable
steps, invalid calls) and requests the endpoint refuses as such (400, 422: a schema, a prompt
too long) stay what they are: recorded rejects with their reasons.

- :func:`is_endpoint_failure` is the one classification;
- :func:`guard_endpoint` wraps a stage's client so an endpoint failure raises
  :class:`EndpointFailure` — not an :class:`LLMError`, so the agents' ``except LLMError``
  (which turn a bad reply into a failed step) let it through and the work item ends at once;
- :class:`EndpointPolicy` says how :func:`~toolalpaca_utils.parallel.run_parallel` treats such an
  item: tried again after a back-off (``retries``), then given up without a result; after
  ``max_consecutive`` items in a row given up, the run stops with
  :class:`EndpointUnreachableError` (which endpoint, how many in a row, what was kept, how to
  resume). Items given up here and there (never enough in a row to stop) get one last round at
  the end of the run; any still without a result make the run end with the same error, naming
  them — a run is never handed back as if it were whole when items are missing. Everything
  finished stays on disk and a rerun retries exactly the items given up.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .llm.client import LLMConnectionError, LLMError, LLMRequestError, LLMTimeoutError

#: HTTP statuses that say the endpoint (not the request) is at fault; besides these, every 5xx.
ENDPOINT_STATUSES = frozenset({401, 403, 404, 408, 429})


class EndpointFailure(Exception):
    """An LLM call of a work item failed because the endpoint failed (``error`` is the LLMError).

    Deliberately not an :class:`LLMError`: code that records a bad model reply as a failed step
    must not record this one."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class EndpointUnreachableError(LLMConnectionError):
    """Work items failed because the LLM endpoint failed: several in a row (the stage stopped early)
    or some here and there (the stage ended without them). Finished work is on disk; ``result``
    holds what the stage has of it (set by the stage), ``missing`` the items left without a result."""

    def __init__(self, message: str, result: Any = None, *, consecutive: int = 0, last_error: str = "",
                 missing: list | None = None):
        super().__init__(message)
        self.result = result
        self.consecutive = consecutive   # items in a row at the stop; 0 when the run ended incomplete
        self.last_error = last_error
        self.missing = missing or []     # the work items left without a result


def is_endpoint_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the endpoint failed (retry later) rather than the model or the request
    (a recorded reject): connection errors and server crashes, timeouts, HTTP 5xx and
    :data:`ENDPOINT_STATUSES`. A request refused before sending (no status) is the request's fault."""
    if isinstance(exc, EndpointFailure):
        return True
    if isinstance(exc, (LLMConnectionError, LLMTimeoutError)):  # LLMServerCrashed is a connection error
        return True
    if isinstance(exc, LLMRequestError):
        status = exc.status_code
        return status is not None and (status >= 500 or status in ENDPOINT_STATUSES)
    return False


class EndpointGuard:
    """A client whose ``chat`` and ``complete`` raise :class:`EndpointFailure` for an endpoint
    failure (other LLM errors pass unchanged); every other attribute is the wrapped client's."""

    def __init__(self, client: Any):
        self.client = client

    def chat(self, messages, **kwargs):
        return self._guarded(self.client.chat, messages, **kwargs)

    def complete(self, prompt, **kwargs):
        # explicit, not left to __getattr__: that would hand out the wrapped, unguarded method
        return self._guarded(self.client.complete, prompt, **kwargs)

    @staticmethod
    def _guarded(call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except LLMError as exc:
            if is_endpoint_failure(exc):
                raise EndpointFailure(exc) from exc
            raise

    def __getattr__(self, name: str):
        return getattr(self.client, name)


def guard_endpoint(client: Any) -> Any:
    """``client`` wrapped in an :class:`EndpointGuard` (once; None stays None)."""
    return client if client is None or isinstance(client, EndpointGuard) else EndpointGuard(client)


def endpoint_name(client: Any) -> str:
    """The endpoint a client talks to, for messages: its URL (and replica count), else its type."""
    client = client.client if isinstance(client, EndpointGuard) else client
    url = getattr(client, "base_url", None)
    if not url:
        return "(unnamed)" if client is None else type(client).__name__
    replicas = len(getattr(client, "replica_urls", ()) or ())
    return f"{url}" + (f" (and {replicas} replicas)" if replicas else "")


@dataclass(frozen=True)
class EndpointPolicy:
    """How a stage treats a work item whose endpoint failed (see the module docstring).

    ``retries`` further tries per item, the first after ``backoff`` seconds, doubling up to
    ``max_backoff`` (the SDK's own quick retries of each call come on top); the stage stops after
    ``max_consecutive`` items in a row were given up. ``endpoint``, ``kept`` (where finished work
    is) and ``resume`` (how to go on) make the stop message."""

    retries: int = 3
    backoff: float = 4.0
    max_backoff: float = 60.0
    max_consecutive: int = 3
    endpoint: str = "(unnamed)"
    kept: str = ""
    resume: str = "run the stage again with the same settings once the endpoint answers"

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        return max(0.0, min(self.max_backoff, self.backoff * 2 ** attempt))

    def for_stage(self, client: Any, *, kept: str = "", resume: str = "") -> "EndpointPolicy":
        """This policy with the stage's endpoint (from ``client``), where its work is kept and how to resume."""
        return dataclasses.replace(self, endpoint=endpoint_name(client), kept=kept or self.kept,
                                   resume=resume or self.resume)


class EndpointTracker:
    """One run's endpoint bookkeeping: retries items (:meth:`run`), counts the items given up in a
    row, and raises the stop (:attr:`halted`) once there are ``policy.max_consecutive`` of them."""

    def __init__(self, policy: EndpointPolicy):
        self.policy = policy
        self.halted = threading.Event()
        self.lock = threading.Lock()
        self.consecutive = 0
        self.stopped_at = 0            # items in a row given up when the run was stopped
        self.given_up: list = []       # the items given up, in the order they were
        self.last_error = ""

    def run(self, work: Callable[[Any], Iterable], item: Any) -> Iterator:
        """``work(item)``'s results; after an endpoint failure the item is tried again (``work`` skips
        what it finished, e.g. the results already kept) up to ``policy.retries`` times, then given up
        with no further result. Any other exception passes."""
        policy = self.policy
        for attempt in range(policy.retries + 1):
            try:
                yield from work(item)
            except Exception as exc:  # noqa: BLE001 — only endpoint failures are handled, others re-raised
                if not is_endpoint_failure(exc):
                    raise
                with self.lock:
                    self.last_error = str(exc)[:500]
                if attempt == policy.retries or self.halted.wait(policy.delay(attempt)):
                    break
                continue
            with self.lock:
                self.consecutive = 0
                if item in self.given_up:  # finished in the last round
                    self.given_up.remove(item)
            return
        with self.lock:
            self.consecutive += 1
            if item not in self.given_up:
                self.given_up.append(item)
            if self.consecutive >= max(1, policy.max_consecutive) and not self.halted.is_set():
                self.stopped_at = self.consecutive
                self.halted.set()

    def last_round(self) -> list:
        """The items given up so far, for one more try (the count in a row starts over); each one
        that finishes leaves :attr:`given_up`."""
        with self.lock:
            self.consecutive = 0
            return list(self.given_up)

    def error(self, *, kept: int, items: int, label: Callable[[Any], str] = str) -> EndpointUnreachableError:
        """The stop: which endpoint, how many items in a row (or which items were left without a
        result), what was kept, how to resume. ``label`` names an item in the message."""
        p = self.policy
        where = f" in {p.kept}" if p.kept else ""
        tries = f"{p.retries} {'retry' if p.retries == 1 else 'retries'} each, with back-off"
        if self.stopped_at:
            what = f"stopped: {self.stopped_at} work items in a row failed because the LLM endpoint {p.endpoint} did not answer ({tries})"
        else:
            names = ", ".join(label(item) for item in self.given_up[:10]) + (", …" if len(self.given_up) > 10 else "")
            what = (f"incomplete: {len(self.given_up)} work items failed because the LLM endpoint {p.endpoint} "
                    f"did not answer ({tries}, and once more at the end of the run): {names}")
        message = (
            f"{what}; last error: {self.last_error}. "
            f"Kept: everything finished{where} ({kept} result{'' if kept == 1 else 's'} handed over in "
            f"this run, read-back ones included); {len(self.given_up)} of {items} items failed for the endpoint and were not recorded "
            f"(no rejects). To resume: {p.resume}; it retries exactly the unfinished work."
        )
        return EndpointUnreachableError(message, consecutive=self.stopped_at, last_error=self.last_error,
                                        missing=list(self.given_up))
