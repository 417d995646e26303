"""Shared pieces of the real tools: errors, input checks, strict query routes, geo helpers.

Every tool answers bad input with a 4xx and ``{"detail": "<which parameter, what is wrong>"}``:
agents (and STE's reflection step) learn from that text, so it names the parameter, says what
was expected and, where possible, suggests a valid value.
"""
from __future__ import annotations

import difflib
import math
import re
import unicodedata
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

# Bounds that keep every answer computable and meaningful ("absurd dates" are rejected).
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2100, 12, 31)
MAX_TEXT = 100           # longest free-text parameter (names, searches)
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


class ToolInputError(Exception):
    """A request the tool cannot answer because of its input (answered as 4xx, never 5xx)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class NotFoundError(ToolInputError):
    """A well-formed code or name that the tool's data does not contain (404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class ErrorResponse(BaseModel):
    detail: str = Field(description="What is wrong with the request: the parameter, the problem and a hint to fix it.")


# Declared on every operation, so specs document the error shape (and FastAPI's own
# HTTPValidationError schema, which we never send, stays out of the spec).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Invalid request; `detail` says which parameter is wrong and why."},
}


class StrictQueryRoute(APIRoute):
    """A route that rejects unknown or repeated query parameters instead of ignoring them.

    Silently ignoring a misspelt parameter (``?yaer=2024``) would hide the agent's mistake;
    the error lists the parameters the endpoint accepts.
    """

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        allowed = sorted(_query_names(self.dependant))

        async def strict_handler(request: Request):
            keys = [k for k, _ in request.query_params.multi_items()]
            unknown = sorted({k for k in keys if k not in allowed})
            if unknown:
                accepted = ", ".join(allowed) if allowed else "no parameters"
                raise ToolInputError(
                    f"Unknown query parameter(s) {', '.join(repr(_clip(k)) for k in unknown)}; "
                    f"this endpoint accepts: {accepted}.", 400)
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ToolInputError(
                    f"Query parameter(s) {', '.join(repr(k) for k in repeated)} given more than once; give each once.", 400)
            return await handler(request)

        return strict_handler


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
# Names of places, countries, units and search words: letters (any script), digits, spaces and
# the punctuation real names use. Everything else (quotes, ;, /, {}, <>, $ ...) is refused.
_NAME_TEXT = re.compile(r"^[\w\s'’.,()\-]+$", re.UNICODE)


def _clip(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def check_text(value: str, param: str, *, max_length: int = MAX_TEXT) -> str:
    """A stripped, non-empty name/search text made of letters, digits, spaces and - ' . , ( )."""
    text = value.strip()
    if not text:
        raise ToolInputError(f"Query parameter '{param}' is empty; give a name or search text.", 422)
    if len(text) > max_length:
        raise ToolInputError(f"Query parameter '{param}' is {len(text)} characters long; the limit is {max_length}.", 422)
    if "__" in text or not _NAME_TEXT.match(text):
        bad = sorted({c for c in text if not re.match(r"[\w\s'’.,()\-]", c)} | ({"__"} if "__" in text else set()))
        raise ToolInputError(
            f"Query parameter '{param}' contains characters that are not allowed ({' '.join(bad) or 'control characters'}); "
            "use letters, digits, spaces and - ' . , ( ) only.", 422)
    return text


def check_date(value: date, param: str, lo: date = MIN_DATE, hi: date = MAX_DATE) -> date:
    if not lo <= value <= hi:
        raise ToolInputError(
            f"Query parameter '{param}' is {value.isoformat()}; it must be between {lo.isoformat()} and {hi.isoformat()}.", 422)
    return value


def check_utc_datetime(value: datetime | None, param: str) -> datetime:
    """An aware UTC datetime: naive input counts as UTC; missing input means now."""
    if value is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    check_date(value.date(), param)
    return value


def fold(text: str) -> str:
    """Case- and accent-insensitive form used for name matching ("São Paulo" == "sao paulo")."""
    if text.isascii():  # fast path: most names
        return text.casefold().strip()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def suggestion(value: str, choices: Iterable[str], n: int = 3) -> str:
    """" Did you mean 'X' or 'Y'?" for a misspelt value, or "" when nothing is close."""
    by_fold: dict[str, str] = {}
    for choice in choices:
        by_fold.setdefault(fold(choice), choice)
    close = difflib.get_close_matches(fold(value), list(by_fold), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(by_fold[c]) for c in close) + "?"


# ---------------------------------------------------------------------------------------------
# countries (shared by holidays, airports, cities, time and countries)
# ---------------------------------------------------------------------------------------------
def resolve_country(value: str, param: str = "country") -> str:
    """ISO 3166-1 alpha-2 code for an alpha-2/alpha-3/numeric code or an English country name."""
    import pycountry

    text = check_text(value, param, max_length=60)
    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        pass
    names = [c.name for c in pycountry.countries]
    raise NotFoundError(
        f"Unknown country {_clip(text)!r} in parameter '{param}'; use an ISO 3166 code such as 'FR' or 'USA', "
        f"or an English name such as 'France'.{suggestion(text, names)}")


def country_name(alpha_2: str) -> str | None:
    import pycountry

    country = pycountry.countries.get(alpha_2=alpha_2)
    return country.name if country else None


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere with the mean Earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def initial_bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return round((math.degrees(math.atan2(x, y)) + 360.0) % 360.0, 1)


def distances(km: float) -> dict[str, float]:
    return {"distance_km": round(km, 1), "distance_mi": round(km / 1.609344, 1), "distance_nmi": round(km / 1.852, 1)}
