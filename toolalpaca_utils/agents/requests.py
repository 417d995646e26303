"""Requests written by code: a bank of sentence frames in several styles, with the call's values
said the way people say them. The fallback when the teacher's request loses a value, and the
base the teacher paraphrases.

A frame is a question, an imperative, a need, or a request with context; the values come in
varied order, some as kind-specific phrases ("in Germany", "on May 1, 2023", "the top 5"), some
naming what they are ("with the collection name Jazz"). The task phrase comes from the
function's one-line summary with its leading verb dropped. A request never names the API or a
function (:func:`~toolalpaca_utils.agents.user.instruction_problems` checks it).
"""
from __future__ import annotations

import random
import re
from typing import Sequence

from ..openapi import describe_function, record_spec
from ..values import Value, words

# (frame id, text): {task} is a noun phrase, {details} the values as clauses
FRAMES = (
    ("can-you", "Can you get me {task}{details}?"),
    ("could-you", "Could you look up {task}{details}?"),
    ("i-need", "I need {task}{details}."),
    ("id-like", "I'd like to see {task}{details}."),
    ("show-me", "Show me {task}{details}."),
    ("context", "I'm preparing a report and need {task}. Please use{details}."),
    ("details-first", "For{details}: what is {task}?"),
    ("please-find", "Please find {task}{details}."),
    ("help-me", "Help me get {task}{details}, thanks."),
    ("quick", "Quick one: {task}{details}?"),
    ("looking-for", "I'm looking for {task}{details}. Can you help?"),
    ("want-to-know", "I want to know {task}{details}."),
)
BARE_FRAMES = ("context", "details-first")
_LEADING_VERB = re.compile(r"^(returns?|gets?|retrieves?|fetch(es)?|lists?|provides?|gives?|finds?|shows?|"
                           r"checks?|searches|search(es)? for|generates?|calculates?|converts?|translates?)\s+", re.I)
_KIND_PHRASES = {
    "country": ("in {v}", "for {v}"), "city": ("in {v}", "for {v}"), "date": ("on {v}", "for {v}"),
    "year": ("in {v}", "for the year {v}"), "count": ("the top {v}", "limited to {v} results"),
    "language": ("in {v}",), "currency": ("in {v}",), "timezone": ("in the {v} time zone",),
}


def task_phrase(record: dict, function: str, names: Sequence[str] | None = None) -> str:
    """The function's one-line summary as a noun phrase: "Returns a list of jobs." -> "a list of
    jobs"; the ``names`` a request may not say (default: the API's and functions' names) are
    replaced by "the service"."""
    summary = describe_function(record_spec(record), function).splitlines()[0].strip().rstrip(".")
    summary = _LEADING_VERB.sub("", summary)
    for term in ([record["Name"], *record["Function_Projection"]] if names is None else names):
        if len(term) > 3:
            summary = re.sub(r"\b(?:(?:a|an|the)\s+)?" + re.escape(term), "the service", summary, flags=re.IGNORECASE)
    return (summary[:1].lower() + summary[1:]) if summary else "the information"


def _clause(name: str, value: Value, rng: random.Random, bare: bool) -> str:
    """One value as words: a kind's phrase ("in Germany") or one naming the parameter; ``bare``
    (after "For" / "Please use") only the latter, as "the <parameter> <value>"."""
    label = " ".join(words(name))
    if bare or value.kind == "boolean":
        return f"the {label} {value.said}"
    phrases = _KIND_PHRASES.get(value.kind)
    if phrases and rng.random() < 0.7:
        return rng.choice(phrases).format(v=value.said)
    return rng.choice(("with {l} {v}", "where the {l} is {v}", "using {v} as the {l}", "{l} {v}")).format(
        l=label, v=value.said)


def _join(clauses: list[str]) -> str:
    if not clauses:
        return ""
    if len(clauses) == 1:
        return " " + clauses[0]
    return " " + ", ".join(clauses[:-1]) + " and " + clauses[-1]


def bank_request(record: dict, function: str, values: dict[str, Value], rng: random.Random,
                 unsayable: Sequence[str] | None = None) -> tuple[str, str]:
    """(request, frame id) for a call: a frame from :data:`FRAMES`, values in shuffled order;
    ``unsayable``: the names replaced in the task phrase (:func:`task_phrase`'s ``names``)."""
    frame_id, frame = rng.choice(FRAMES)
    if not values and frame_id in BARE_FRAMES:  # "Please use." / "For:" need a value
        frame_id, frame = FRAMES[0]
    names = list(values)
    rng.shuffle(names)
    details = _join([_clause(n, values[n], rng, frame_id in BARE_FRAMES) for n in names])
    text = frame.format(task=task_phrase(record, function, unsayable), details=details)
    return text[:1].upper() + text[1:], frame_id
