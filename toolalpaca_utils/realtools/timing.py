"""Dates and times: PublicHolidays (holidays), WorldTime (zoneinfo + tzdata), SunTimes (astral)."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from .common import (
    ERROR_RESPONSES, MAX_TEXT, NotFoundError, StrictQueryRoute, ToolInputError, check_date, check_text,
    check_utc_datetime, country_name, fold, resolve_country, suggestion,
)
from .geo import find_city

HOLIDAY_YEARS = (1950, 2100)
_ISO_DATE = "Date in ISO format YYYY-MM-DD"


# =============================================================================================
# PublicHolidays
# =============================================================================================
class Holiday(BaseModel):
    """A public holiday."""

    date: dt.date
    name: str = Field(description="Holiday name (in English where the data has a translation).")
    weekday: str = Field(description="Day of the week, e.g. 'Monday'.")


class HolidayList(BaseModel):
    """Public holidays of a country in one year."""

    country: str = Field(description="ISO 3166-1 alpha-2 code.")
    country_name: str | None
    subdivision: str | None = Field(description="Subdivision code the list applies to, if one was given.")
    year: int
    total: int
    holidays: list[Holiday]


class HolidayCheck(BaseModel):
    """Whether a date is a public holiday."""

    country: str
    subdivision: str | None
    date: dt.date
    weekday: str
    is_holiday: bool
    names: list[str] = Field(description="Names of the holidays on that date (empty if none).")


class UpcomingHoliday(Holiday):
    """A public holiday and how many days away it is."""

    days_away: int = Field(description="Days from the start date (0 = the start date itself).")


class UpcomingHolidays(BaseModel):
    """The next public holidays from a start date."""

    country: str
    subdivision: str | None
    start_date: dt.date
    holidays: list[UpcomingHoliday]


class HolidayCountry(BaseModel):
    """A country with holiday data."""

    code: str = Field(description="ISO 3166-1 alpha-2 code.")
    name: str | None
    subdivisions: list[str] = Field(description="Subdivision codes with their own holidays (use as `subdivision`).")


class HolidayCountryList(BaseModel):
    """Countries with holiday data."""

    total: int
    countries: list[HolidayCountry]


@lru_cache(maxsize=1)
def _supported() -> dict[str, list[str]]:
    import holidays

    # The registry also lists aliases ("DEU", "UK") and non-ISO codes; keep ISO alpha-2 entries,
    # the codes resolve_country() produces.
    return {code: list(subs) for code, subs in holidays.list_supported_countries().items()
            if len(code) == 2 and country_name(code)}


def _holiday_country(country: str, subdivision: str | None) -> tuple[str, str | None]:
    code = resolve_country(country)
    supported = _supported()
    if code not in supported:
        raise NotFoundError(f"Public holiday data is not available for {code} ({country_name(code)}) "
                            "(parameter 'country'); listHolidayCountries gives the supported countries.")
    if subdivision is None:
        return code, None
    sub = subdivision.strip()
    if sub.upper().startswith(code + "-"):
        sub = sub[len(code) + 1:]  # accept ISO 3166-2 form "US-CA"
    known = supported[code]
    sub = next((k for k in known if k.casefold() == sub.casefold()), sub)  # codes are mostly "CA", some "Flemish"
    if sub not in known:
        listing = ", ".join(known[:60]) + (" …" if len(known) > 60 else "") if known else "none"
        raise NotFoundError(f"Unknown subdivision {subdivision[:40]!r} for {code} (parameter 'subdivision'); known codes: {listing}.")
    return code, sub


@lru_cache(maxsize=512)
def _holidays_of_year(code: str, subdivision: str | None, year: int) -> tuple[tuple[dt.date, tuple[str, ...]], ...]:
    import holidays

    probe = holidays.country_holidays(code, subdiv=subdivision)
    languages = getattr(probe, "supported_languages", ()) or ()
    language = next((lang for lang in ("en_US", "en_GB", "en") if lang in languages), None)
    data = holidays.country_holidays(code, subdiv=subdivision, years=year, language=language)
    return tuple((day, tuple(data.get_list(day))) for day in sorted(data.keys()) if day.year == year)


def _check_year(year: int, param: str = "year") -> int:
    lo, hi = HOLIDAY_YEARS
    if not lo <= year <= hi:
        raise ToolInputError(f"Query parameter '{param}' is {year}; holiday data covers the years {lo} to {hi}.", 422)
    return year


holidays_router = APIRouter(prefix="/holidays", tags=["PublicHolidays"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)

_COUNTRY_DOC = "Country as ISO 3166 code (e.g. 'DE', 'DEU') or English name ('Germany')."
_SUBDIV_DOC = "Optional subdivision code for regional holidays, e.g. 'BY' (Bavaria) for DE or 'CA' for US."


@holidays_router.get(
    "/list", operation_id="listPublicHolidays", response_model=HolidayList,
    summary="All public holidays of a country in a year",
    description="Dates and names of the public holidays of a country (optionally a state/province) in one year.",
)
def list_public_holidays(
    country: Annotated[str, Query(max_length=60, description=_COUNTRY_DOC)],
    year: Annotated[int, Query(description="Year, 1950-2100.")],
    subdivision: Annotated[str | None, Query(max_length=10, description=_SUBDIV_DOC)] = None,
) -> HolidayList:
    code, sub = _holiday_country(country, subdivision)
    rows = [Holiday(date=d, name="; ".join(names), weekday=d.strftime("%A")) for d, names in _holidays_of_year(code, sub, _check_year(year))]
    return HolidayList(country=code, country_name=country_name(code), subdivision=sub, year=year, total=len(rows), holidays=rows)


@holidays_router.get(
    "/check", operation_id="checkPublicHoliday", response_model=HolidayCheck,
    summary="Is a given date a public holiday?",
    description="Tells whether a date is a public holiday in a country (optionally a state/province) and names it.",
)
def check_public_holiday(
    country: Annotated[str, Query(max_length=60, description=_COUNTRY_DOC)],
    date: Annotated[dt.date, Query(description=_ISO_DATE + ", years 1950-2100.")],
    subdivision: Annotated[str | None, Query(max_length=10, description=_SUBDIV_DOC)] = None,
) -> HolidayCheck:
    code, sub = _holiday_country(country, subdivision)
    _check_year(date.year, "date")
    names = dict(_holidays_of_year(code, sub, date.year)).get(date, ())
    return HolidayCheck(country=code, subdivision=sub, date=date, weekday=date.strftime("%A"), is_holiday=bool(names), names=list(names))


@holidays_router.get(
    "/next", operation_id="getNextPublicHolidays", response_model=UpcomingHolidays,
    summary="The next public holidays on or after a date",
    description="The next `count` public holidays of a country on or after a start date, with days until each.",
)
def get_next_public_holidays(
    country: Annotated[str, Query(max_length=60, description=_COUNTRY_DOC)],
    start_date: Annotated[dt.date, Query(description=_ISO_DATE + "; holidays on or after this date are listed.")],
    count: Annotated[int, Query(ge=1, le=20, description="How many holidays to return (1-20).")] = 1,
    subdivision: Annotated[str | None, Query(max_length=10, description=_SUBDIV_DOC)] = None,
) -> UpcomingHolidays:
    code, sub = _holiday_country(country, subdivision)
    _check_year(start_date.year, "start_date")
    found: list[UpcomingHoliday] = []
    year = start_date.year
    while len(found) < count and year <= min(start_date.year + 2, HOLIDAY_YEARS[1]):
        for d, names in _holidays_of_year(code, sub, year):
            if d >= start_date and len(found) < count:
                found.append(UpcomingHoliday(date=d, name="; ".join(names), weekday=d.strftime("%A"), days_away=(d - start_date).days))
        year += 1
    return UpcomingHolidays(country=code, subdivision=sub, start_date=start_date, holidays=found)


@holidays_router.get(
    "/countries", operation_id="listHolidayCountries", response_model=HolidayCountryList,
    summary="Countries with holiday data",
    description="The countries (and their subdivision codes) for which public holidays are available, optionally filtered by name.",
)
def list_holiday_countries(
    search: Annotated[str | None, Query(max_length=60, description="Only countries whose name or code contains this text, e.g. 'united'.")] = None,
) -> HolidayCountryList:
    key = fold(check_text(search, "search", max_length=60)) if search is not None else None
    rows = []
    for code, subs in sorted(_supported().items()):
        name = country_name(code)
        if key is None or key in fold(name or "") or key == fold(code):
            rows.append(HolidayCountry(code=code, name=name, subdivisions=subs))
    return HolidayCountryList(total=len(rows), countries=rows)


# =============================================================================================
# WorldTime
# =============================================================================================
class ZoneTime(BaseModel):
    """Local time in a time zone at one instant."""

    timezone: str = Field(description="IANA time zone name.")
    local_datetime: str = Field(description="Local date and time with UTC offset, ISO 8601.")
    local_date: dt.date
    local_time: str = Field(description="Local wall-clock time HH:MM:SS.")
    weekday: str
    utc_datetime: str = Field(description="The same instant in UTC, ISO 8601.")
    utc_offset: str = Field(description="Offset from UTC, e.g. '+05:30'.")
    abbreviation: str = Field(description="Zone abbreviation in effect, e.g. 'CEST'.")
    is_dst: bool = Field(description="Whether daylight saving time is in effect.")


class CityTime(ZoneTime):
    """Local time and time zone of a city."""

    city: str
    country: str = Field(description="ISO 3166-1 alpha-2 code.")
    country_name: str | None


class TimeConversion(BaseModel):
    """One instant shown in the source and the target time zone."""

    source: ZoneTime
    target: ZoneTime
    difference_hours: float = Field(description="Target UTC offset minus source UTC offset, in hours.")


class TimeZoneInfo(BaseModel):
    """A time zone and its current UTC offset."""

    name: str
    utc_offset_now: str = Field(description="Current offset from UTC, e.g. '-03:00'.")


class TimeZoneList(BaseModel):
    """Matching IANA time zones."""

    total: int
    timezones: list[TimeZoneInfo]


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Folded name -> canonical IANA name (without the legacy/system entries)."""
    skip = ("posix", "right/", "Factory", "localtime", "SystemV")
    return {fold(z): z for z in sorted(available_timezones()) if not z.startswith(skip)}


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, list[str]]:
    """Country code -> zones, from tzdata's zone tables (fallback: zones of the country's cities)."""
    out: dict[str, list[str]] = {}
    try:
        from importlib.resources import files

        text = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
        for line in text.splitlines():
            if line and not line.startswith("#"):
                parts = line.split("\t")
                if len(parts) >= 3:
                    out.setdefault(parts[0], []).append(parts[2])
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        from .geo import city_index

        for c in city_index().cities:
            zones = out.setdefault(c["countrycode"], [])
            if c["timezone"] not in zones:
                zones.append(c["timezone"])
    return {k: sorted(v) for k, v in out.items()}


def resolve_zone(value: str, param: str = "timezone") -> ZoneInfo:
    text = value.strip()
    zone = _zones().get(fold(text).replace(" ", "_"))
    if zone is None:
        hint = suggestion(text.replace(" ", "_"), _zones().values())
        raise NotFoundError(f"Unknown time zone {text[:60]!r} (parameter '{param}'); use an IANA name such as "
                            f"'Europe/Paris' or 'America/New_York' (listTimeZones lists them).{hint}")
    return ZoneInfo(zone)


def _offset_text(offset: dt.timedelta | None) -> str:
    minutes = int((offset or dt.timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_time(instant_utc: dt.datetime, zone: ZoneInfo) -> ZoneTime:
    local = instant_utc.astimezone(zone)
    return ZoneTime(
        timezone=str(zone.key), local_datetime=local.isoformat(), local_date=local.date(),
        local_time=local.strftime("%H:%M:%S"), weekday=local.strftime("%A"),
        utc_datetime=instant_utc.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        utc_offset=_offset_text(local.utcoffset()), abbreviation=local.tzname() or "",
        is_dst=bool(local.dst()),
    )


time_router = APIRouter(prefix="/time", tags=["WorldTime"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)
_AT_DOC = ("Instant to report, as a UTC date-time 'YYYY-MM-DDTHH:MM:SSZ' (years 1900-2100); "
           "omit for the current time.")


@time_router.get(
    "/now", operation_id="getTimeInZone", response_model=ZoneTime,
    summary="Local time in a time zone",
    description="Local date, time, UTC offset, abbreviation and DST flag of an IANA time zone, now or at a given UTC instant.",
)
def get_time_in_zone(
    timezone: Annotated[str, Query(max_length=64, description="IANA time zone name, e.g. 'Asia/Tokyo' or 'America/New_York'.")],
    at: Annotated[dt.datetime | None, Query(description=_AT_DOC)] = None,
) -> ZoneTime:
    zone = resolve_zone(timezone)
    return zone_time(check_utc_datetime(at, "at"), zone)


@time_router.get(
    "/convert", operation_id="convertTime", response_model=TimeConversion,
    summary="Convert a local time from one time zone to another",
    description="Takes a wall-clock date-time in the source zone and gives the same instant in the target zone.",
)
def convert_time(
    datetime: Annotated[dt.datetime, Query(description="Local date-time in the source zone, 'YYYY-MM-DDTHH:MM:SS' without offset.")],
    from_timezone: Annotated[str, Query(max_length=64, description="IANA zone of the given time, e.g. 'Europe/London'.")],
    to_timezone: Annotated[str, Query(max_length=64, description="IANA zone to convert to, e.g. 'Australia/Sydney'.")],
) -> TimeConversion:
    if datetime.tzinfo is not None:
        raise ToolInputError("Query parameter 'datetime' must be a local wall-clock time without UTC offset "
                             "(e.g. '2024-05-01T09:30:00'); the zone comes from 'from_timezone'.", 422)
    check_date(datetime.date(), "datetime")
    source_zone, target_zone = resolve_zone(from_timezone, "from_timezone"), resolve_zone(to_timezone, "to_timezone")
    instant = datetime.replace(tzinfo=source_zone).astimezone(dt.timezone.utc)
    source, target = zone_time(instant, source_zone), zone_time(instant, target_zone)
    diff = ((instant.astimezone(target_zone).utcoffset() or dt.timedelta()) - (instant.astimezone(source_zone).utcoffset() or dt.timedelta()))
    return TimeConversion(source=source, target=target, difference_hours=diff.total_seconds() / 3600)


@time_router.get(
    "/city", operation_id="getCityTime", response_model=CityTime,
    summary="Time zone and local time of a city",
    description="Finds the city (most populous of that name unless a country is given) and returns its time zone and local time.",
)
def get_city_time(
    city: Annotated[str, Query(max_length=MAX_TEXT, description="City name, e.g. 'Mumbai'.")],
    country: Annotated[str | None, Query(max_length=60, description="Country of the city (ISO code or English name), to pick among same-named cities.")] = None,
    at: Annotated[dt.datetime | None, Query(description=_AT_DOC)] = None,
) -> CityTime:
    found = find_city(city, country)
    base = zone_time(check_utc_datetime(at, "at"), ZoneInfo(found["timezone"]))
    return CityTime(**base.model_dump(), city=found["name"], country=found["countrycode"], country_name=country_name(found["countrycode"]))


@time_router.get(
    "/zones", operation_id="listTimeZones", response_model=TimeZoneList,
    summary="List IANA time zones",
    description="Time zone names, optionally only those of a country or containing a text, with their current UTC offset.",
)
def list_time_zones(
    search: Annotated[str | None, Query(max_length=60, description="Only zones whose name contains this text, e.g. 'America' or 'Paris'.")] = None,
    country: Annotated[str | None, Query(max_length=60, description="Only zones used in this country (ISO code or English name).")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Maximum number of zones to return (1-500).")] = 100,
) -> TimeZoneList:
    names = sorted(_zones().values())
    if country is not None:
        code = resolve_country(country)
        names = _zones_by_country().get(code, [])
    if search is not None:
        key = fold(check_text(search, "search", max_length=60)).replace(" ", "_")
        names = [n for n in names if key in fold(n)]
    now = dt.datetime.now(dt.timezone.utc)
    rows = [TimeZoneInfo(name=n, utc_offset_now=_offset_text(now.astimezone(ZoneInfo(n)).utcoffset())) for n in names[:limit]]
    return TimeZoneList(total=len(names), timezones=rows)


# =============================================================================================
# SunTimes
# =============================================================================================
class SunTimes(BaseModel):
    """Sun events of one day at a place, in local time."""

    latitude: float
    longitude: float
    date: dt.date
    timezone: str = Field(description="IANA zone the times are given in.")
    dawn: str | None = Field(description="Civil dawn (sun 6° below horizon), local ISO time; null if it does not occur.")
    sunrise: str | None = Field(description="Sunrise, local ISO time; null if the sun does not rise or set that day.")
    solar_noon: str = Field(description="Solar noon, local ISO time.")
    sunset: str | None = Field(description="Sunset, local ISO time; null if the sun does not rise or set that day.")
    dusk: str | None = Field(description="Civil dusk, local ISO time; null if it does not occur.")
    daylight_hours: float = Field(description="Hours between sunrise and sunset (24 for polar day, 0 for polar night).")
    noon_elevation_deg: float = Field(description="Elevation of the sun at solar noon, degrees.")
    note: str | None = Field(description="Explains polar day/night when sunrise or sunset does not occur.")


class CitySunTimes(SunTimes):
    """Sun events of one day in a city, in the city's time zone."""

    city: str
    country: str = Field(description="ISO 3166-1 alpha-2 code.")


class SunPosition(BaseModel):
    """Where the sun stands in the sky."""

    latitude: float
    longitude: float
    utc_datetime: str
    elevation_deg: float = Field(description="Angle of the sun above the horizon, degrees (negative below).")
    azimuth_deg: float = Field(description="Compass direction of the sun, degrees clockwise from north.")
    is_daylight: bool = Field(description="True when the sun's upper edge is above the horizon.")


def _sun_times(latitude: float, longitude: float, day: dt.date, zone: ZoneInfo) -> dict:
    from astral import Observer
    from astral import sun as astral_sun

    observer = Observer(latitude=latitude, longitude=longitude)

    noon = astral_sun.noon(observer, date=day, tzinfo=zone)

    def event(fn, after_noon: bool) -> str | None:
        # astral returns the event that falls on the local date; near the poles the evening's dusk
        # can fall after midnight (or the morning's dawn before it), so take the neighbouring day.
        try:
            when = fn(observer, date=day, tzinfo=zone)
            if after_noon and when < noon:
                when = fn(observer, date=day + dt.timedelta(days=1), tzinfo=zone)
            elif not after_noon and when > noon:
                when = fn(observer, date=day - dt.timedelta(days=1), tzinfo=zone)
            return when.replace(microsecond=0).isoformat()
        except ValueError:  # astral: the sun never reaches that elevation on this day
            return None

    noon_elevation = astral_sun.elevation(observer, noon)
    sunrise, sunset = event(astral_sun.sunrise, False), event(astral_sun.sunset, True)
    note = None
    if sunrise and sunset:
        hours = (dt.datetime.fromisoformat(sunset) - dt.datetime.fromisoformat(sunrise)).total_seconds() / 3600
        hours = min(24.0, max(0.0, hours))
    elif noon_elevation > 0:
        hours, note = 24.0, "Polar day: the sun stays above the horizon all day."
    else:
        hours, note = 0.0, "Polar night: the sun stays below the horizon all day."
    return dict(latitude=latitude, longitude=longitude, date=day, timezone=str(zone.key),
                dawn=event(astral_sun.dawn, False), sunrise=sunrise, solar_noon=noon.replace(microsecond=0).isoformat(),
                sunset=sunset, dusk=event(astral_sun.dusk, True), daylight_hours=round(hours, 2),
                noon_elevation_deg=round(noon_elevation, 2), note=note)


sun_router = APIRouter(prefix="/sun", tags=["SunTimes"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)
_LAT_DOC = "Latitude in degrees, -89.9 (south) to 89.9 (north)."
_LON_DOC = "Longitude in degrees, -180 (west) to 180 (east)."


@sun_router.get(
    "/times", operation_id="getSunTimes", response_model=SunTimes,
    summary="Sunrise, sunset and twilight for coordinates and a date",
    description="Dawn, sunrise, solar noon, sunset, dusk and day length at a latitude/longitude on a date, in a chosen time zone.",
)
def get_sun_times(
    latitude: Annotated[float, Query(ge=-89.9, le=89.9, allow_inf_nan=False, description=_LAT_DOC)],
    longitude: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description=_LON_DOC)],
    date: Annotated[dt.date, Query(description=_ISO_DATE + ", years 1900-2100.")],
    timezone: Annotated[str, Query(max_length=64, description="IANA zone for the returned times, e.g. 'Europe/Oslo'. Default 'UTC'.")] = "UTC",
) -> SunTimes:
    return SunTimes(**_sun_times(latitude, longitude, check_date(date, "date"), resolve_zone(timezone)))


@sun_router.get(
    "/city", operation_id="getCitySunTimes", response_model=CitySunTimes,
    summary="Sunrise and sunset in a city on a date",
    description="Like getSunTimes, but for a city by name; times are in the city's own time zone.",
)
def get_city_sun_times(
    city: Annotated[str, Query(max_length=MAX_TEXT, description="City name, e.g. 'Reykjavik'.")],
    date: Annotated[dt.date, Query(description=_ISO_DATE + ", years 1900-2100.")],
    country: Annotated[str | None, Query(max_length=60, description="Country of the city (ISO code or English name), to pick among same-named cities.")] = None,
) -> CitySunTimes:
    found = find_city(city, country)
    lat = max(-89.9, min(89.9, float(found["latitude"])))
    times = _sun_times(lat, float(found["longitude"]), check_date(date, "date"), ZoneInfo(found["timezone"]))
    return CitySunTimes(**times, city=found["name"], country=found["countrycode"])


@sun_router.get(
    "/position", operation_id="getSunPosition", response_model=SunPosition,
    summary="Position of the sun in the sky",
    description="Elevation and azimuth of the sun seen from a latitude/longitude at a UTC instant.",
)
def get_sun_position(
    latitude: Annotated[float, Query(ge=-89.9, le=89.9, allow_inf_nan=False, description=_LAT_DOC)],
    longitude: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description=_LON_DOC)],
    at: Annotated[dt.datetime | None, Query(description=_AT_DOC)] = None,
) -> SunPosition:
    from astral import Observer
    from astral import sun as astral_sun

    instant = check_utc_datetime(at, "at")
    observer = Observer(latitude=latitude, longitude=longitude)
    elevation = astral_sun.elevation(observer, instant)
    return SunPosition(latitude=latitude, longitude=longitude, utc_datetime=instant.isoformat().replace("+00:00", "Z"),
                       elevation_deg=round(elevation, 2), azimuth_deg=round(astral_sun.azimuth(observer, instant), 2),
                       is_daylight=elevation > -0.833)


def warm_up() -> None:
    _supported()
    _zones()
    _zones_by_country()
