"""Does a request say a value? The check (:func:`mentioned`) and its converse (:func:`readings`).

A request may say a value as the call writes it or in another form, as people do: a number's
usual spellings, a date or a moment in prose, a country, currency, language, airport, time zone
or unit by its name (:mod:`.namings`), an expression in words (:mod:`.spoken_math`).
:func:`mentioned` is what the corpus-quality report and the request checks use; :func:`readings`
lists the values a request says, as a call carries them, for grounded decoding, and which of them
are of each kind (:class:`Readings`: typed grounding).
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any, Sequence

from .namings import DATE_FORMS, DATETIME_FORMS, NUMBER_WORDS, named
from .spoken_math import expressions
from .spoken_math import numbers as said_numbers
from .values import asks_code, string_kind


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _says(said: str, form: str) -> bool:
    """Is ``form`` in ``said`` (both normalised) as whole words: "usd" is not in "usda"."""
    return form in said and re.search(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])", said) is not None


_CASED = ("zones", "units")  # values whose case tells them apart: "km" (kilometre) is not "KM" (Comoros)


@functools.lru_cache(maxsize=1)
def _names_by_value() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """A named value -> the normalised names a request may say it by (:func:`.namings.named`): codes by
    their lower case ("de" or "DE": Germany), zones and unit symbols as they are written."""
    by_code: dict[str, set[str]] = {}
    by_exact: dict[str, set[str]] = {}
    for key, pairs in named().items():
        index = by_exact if key in _CASED else by_code
        for value, name in pairs:
            index.setdefault(value if key in _CASED else value.lower(), set()).add(_normal(name))
    return by_code, by_exact


@functools.lru_cache(maxsize=1)
def _values_by_name() -> dict[str, dict[str, list[str]]]:
    """Per list of :func:`.namings.named`: a normalised name -> the values it names (the other
    way round)."""
    index: dict[str, dict[str, list[str]]] = {}
    for key, pairs in named().items():
        for value, name in pairs:
            index.setdefault(key, {}).setdefault(_normal(name), []).append(value)
    return index


def _moment_forms(text: str) -> set[str]:
    """An ISO date's or date-time's prose spellings (DATE_FORMS, DATETIME_FORMS)."""
    try:
        if "T" in text:
            moment = dt.datetime.fromisoformat(text)
            return {moment.strftime(f) for f in DATETIME_FORMS}
        day = dt.date.fromisoformat(text)
        return {day.strftime(f) for f in DATE_FORMS}
    except ValueError:
        return set()


def _forms(value: Any) -> set[str]:
    """The forms of ``value`` a request may use, normalised (lower case, single spaces)."""
    text = str(value).strip()
    forms = {text}
    if isinstance(value, bool):
        return {"yes", "no", "true", "false", "only", "without", "with"}
    if isinstance(value, (int, float)):
        number = float(value)
        forms |= {f"{number:g}", f"{number:,.2f}", f"{number:.2f}", f"{number:,g}"}
        if number.is_integer():
            forms |= {str(int(number)), f"{int(number):,}"}
            if 1 <= number <= len(NUMBER_WORDS):
                forms.add(NUMBER_WORDS[int(number) - 1])
    by_code, by_exact = _names_by_value()
    forms |= _moment_forms(text) | by_code.get(text.lower(), set()) | by_exact.get(text, set())
    return {_normal(f) for f in forms if f}


def mentioned(value: Any, text: str) -> bool:
    """Does ``text`` say ``value``, in any accepted form (case, spacing, a number's, a date's or a
    moment's usual spellings, the name of a country, currency, language, airport, time zone or
    unit for its code, an arithmetic phrase for its expression: :mod:`.spoken_math`)? Booleans
    count as said when any yes/no-like word is there (a user says "only commercial ones", not
    "true")."""
    said = _normal(text)
    return any(_says(said, form) for form in _forms(value)) or (isinstance(value, str) and value in expressions(text))


# =========================================================================== readings
_EDGE = "\"'“”‘’«».,;:!?()[]{}"   # stripped from a span's ends: "Nairobi," and "(May 1, 2023)" are values
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_CLOCK = r"(?: at (\d{1,2}):(\d{2})(?: ?([AaPp][Mm]))?)?"  # an optional time: "at 2:30 PM", "at 14:30"
_PROSE_DATES = ((re.compile(rf"\b({_MONTHS}) (\d{{1,2}}), (\d{{4}})\b{_CLOCK}"), "%B %d %Y"),  # DATE_FORMS' prose
                (re.compile(rf"\b(\d{{1,2}}) ({_MONTHS}) (\d{{4}})\b{_CLOCK}"), "%d %B %Y"))   # ones, with a time


def _prose_moments(text: str) -> list[str]:
    """The ISO form of each date (and each date-time) ``text`` writes out in prose."""
    out = []
    for pattern, form in _PROSE_DATES:
        for match in pattern.finditer(text):
            day_text, (hour, minute, half) = " ".join(match.groups()[:3]), match.groups()[3:]
            try:
                day = dt.datetime.strptime(day_text, form)
                out.append(day.date().isoformat())
                if hour:
                    h = int(hour) % 12 + (12 if half and half.lower() == "pm" else 0) if half else int(hour)
                    out.append(day.replace(hour=h, minute=int(minute)).strftime("%Y-%m-%dT%H:%M:%S"))
            except ValueError:  # "February 30, 2024", "25:00"
                pass
    return out


_KIND_LISTS = {"country": "countries", "currency": "currencies", "language": "languages", "airport": "airports",
               "timezone": "zones", "unit": "units"}  # values.string_kind -> its list in namings.named
_BY_NAME = ("countries", "languages", "airports")  # lists whose values a call may carry as the name itself
_WORDS_TOO = {"in", *"abcdefghijklmnopqrstuvwxyz"}  # unit symbols a request writes as words ("in", "it's")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")  # zone: ISO 8601


class Readings(list):
    """The values a request says (:func:`readings`), and ``by_kind``: those of each kind a call
    carries (a list of :func:`.namings.named` -> the codes it names and codes written as such;
    "<list>:names" -> the names themselves; "date", "datetime" -> ISO forms; "math" -> calculator
    expressions, :func:`.spoken_math.expressions`), and ``numbers``: the numbers it says outside
    its dates, times and arithmetic (:func:`.spoken_math.numbers`)."""

    def __init__(self, values, by_kind: dict[str, list[str]], numbers: Sequence[int | float] = ()):
        super().__init__(values)
        self.by_kind = by_kind
        self.numbers = list(numbers)

    @staticmethod
    def kind_of(name: str, schema: dict) -> str | None:
        """The kind of a free string parameter that readings know (a date, a date-time, a
        country, currency, language, airport, time zone, unit or expression:
        :func:`toolalpaca_utils.values.string_kind`), else None."""
        kind = string_kind(name, schema)
        key = _KIND_LISTS.get(kind, kind)
        return key if key in (*_KIND_LISTS.values(), "date", "datetime", "math") else None

    def for_parameter(self, name: str, schema: dict) -> list[str]:
        """The request's values of the parameter's kind (:meth:`kind_of`), as the corpus carries
        them (a code, or for a country, language or airport also its name unless the parameter
        asks for a code); [] for a parameter of no such kind or a kind the request does not say."""
        key = self.kind_of(name, schema)
        if key is None:
            return []
        typed = list(self.by_kind.get(key, []))
        if key in _BY_NAME and not asks_code(name, schema):
            typed += self.by_kind.get(key + ":names", [])
        return typed


def _kind_readings(text: str) -> dict[str, list[str]]:
    """``Readings.by_kind`` of ``text``: per named list, the values its names there name and its
    values written as they are ("USD", "degF"); each named country, language or airport's own
    name; the ISO dates and date-times it writes (in prose or in ISO); the expressions it says."""
    said = _normal(text)
    tokens = {t.strip(_EDGE) for t in text.split()}
    out: dict[str, dict[str, None]] = {}
    for key, names in _values_by_name().items():
        found = out.setdefault(key, {})
        for name, values in names.items():
            if name not in _WORDS_TOO and _says(said, name):
                found.update(dict.fromkeys(values))
        found.update(dict.fromkeys(v for v in tokens if not v.islower() and v in _values_of(key)))  # not "it": Italian
    for key in _BY_NAME:  # a call may carry the name itself where the request writes it
        names = (_canonical_names(key).get(v) for v in out[key])
        out[key + ":names"] = dict.fromkeys(n for n in names if n and _says(said, _normal(n)))
    moments = _prose_moments(text) + [t for t in tokens if _ISO_DATE.match(t) or _ISO_MOMENT.match(t)]
    out["date"] = dict.fromkeys(m for m in moments if "T" not in m)
    out["datetime"] = dict.fromkeys(m for m in moments if "T" in m)
    out["math"] = dict.fromkeys(expressions(text))
    return {key: list(values) for key, values in out.items() if values}


@functools.lru_cache(maxsize=None)
def _values_of(key: str) -> frozenset[str]:
    return frozenset(value for value, _ in named()[key])


@functools.lru_cache(maxsize=None)
def _canonical_names(key: str) -> dict[str, str]:
    """A code -> the name its data list gives it (the first: "DE" -> "Germany")."""
    out: dict[str, str] = {}
    for value, name in named()[key]:
        out.setdefault(value, name)
    return out


def readings(text: str, max_words: int = 5) -> Readings:
    """The string values ``text`` says, as a call would carry them: every run of up to
    ``max_words`` words (end punctuation stripped), the code of each country, currency, language,
    airport, time zone and unit it names, the ISO form of each date and date-time it writes out,
    and each arithmetic phrase as an expression. These are the values :func:`mentioned` accepts
    for ``text``, the other way round (what the cpu corpus teaches: a call's values come from its
    request, a name as its code, a date in ISO). Grounded decoding picks a call's free string values among them
    (:func:`toolalpaca_utils.react.step_schema`), a typed parameter's among those of its kind
    (:meth:`Readings.for_parameter`)."""
    tokens = text.split()
    out: dict[str, None] = {}
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + max_words) + 1):
            span = " ".join(tokens[i:j]).strip(_EDGE)
            if span:
                out[span] = None
    by_kind = _kind_readings(text)
    for values in by_kind.values():
        out.update(dict.fromkeys(values))
    undated = text
    for pattern, _ in _PROSE_DATES:  # "May 1, 2023" says no 1 and no 2023
        undated = pattern.sub(" ; ", undated)
    return Readings(out, by_kind, said_numbers(undated))
