"""Example calls for every endpoint and a bounded loopback load test (used by tests and scripts).

The load test only ever targets a loopback base URL and stops after a fixed number of requests.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .server import check_loopback

# One valid call per operation: (path, query parameters). Keep in step with the app (a test checks).
EXAMPLE_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "listPublicHolidays": ("/holidays/list", {"country": "US", "year": 2024}),
    "checkPublicHoliday": ("/holidays/check", {"country": "DE", "date": "2024-10-03", "subdivision": "BY"}),
    "getNextPublicHolidays": ("/holidays/next", {"country": "FR", "start_date": "2024-07-01", "count": 3}),
    "listHolidayCountries": ("/holidays/countries", {"search": "united"}),
    "getAirportByCode": ("/airports/lookup", {"code": "JFK"}),
    "searchAirports": ("/airports/search", {"city": "London", "country": "GB", "limit": 3}),
    "getAirportDistance": ("/airports/distance", {"origin": "JFK", "destination": "LHR"}),
    "getCountry": ("/countries/lookup", {"country": "Japan"}),
    "searchCountries": ("/countries/search", {"query": "guinea"}),
    "listSubdivisions": ("/countries/subdivisions", {"country": "CA", "type": "Province"}),
    "searchCities": ("/cities/search", {"name": "Springfield", "limit": 3}),
    "listLargestCities": ("/cities/largest", {"country": "BR", "limit": 3}),
    "getCityDistance": ("/cities/distance", {"origin": "Paris", "destination": "Berlin"}),
    "getTimeInZone": ("/time/now", {"timezone": "Asia/Kolkata", "at": "2024-03-15T12:00:00Z"}),
    "convertTime": ("/time/convert", {"datetime": "2024-05-01T09:30:00", "from_timezone": "Europe/London",
                                      "to_timezone": "Australia/Sydney"}),
    "getCityTime": ("/time/city", {"city": "Mumbai", "at": "2024-01-01T00:00:00Z"}),
    "listTimeZones": ("/time/zones", {"country": "AR", "limit": 5}),
    "getSunTimes": ("/sun/times", {"latitude": 59.91, "longitude": 10.75, "date": "2024-06-21", "timezone": "Europe/Oslo"}),
    "getCitySunTimes": ("/sun/city", {"city": "Reykjavik", "date": "2024-12-21"}),
    "getSunPosition": ("/sun/position", {"latitude": 0, "longitude": 0, "at": "2024-03-20T12:00:00Z"}),
    "convertUnits": ("/units/convert", {"value": 5, "from_unit": "mile", "to_unit": "km"}),
    "getUnitInfo": ("/units/info", {"unit": "furlong"}),
    "listUnits": ("/units/list", {"kind": "pressure"}),
    "convertCurrency": ("/currency/convert", {"amount": 100, "from_currency": "USD", "to_currency": "JPY", "date": "2020-03-16"}),
    "getExchangeRates": ("/currency/rates", {"base": "USD", "date": "2015-06-01", "symbols": "GBP,EUR"}),
    "listCurrencies": ("/currency/list", {}),
    "getRandomJoke": ("/jokes/random", {"category": "chuck", "seed": 3}),
    "listJokes": ("/jokes/list", {"limit": 2}),
    "searchJokes": ("/jokes/search", {"query": "python"}),
    "evaluateExpression": ("/calc/evaluate", {"expression": "2^10/3"}),
    "solveEquation": ("/calc/solve", {"equation": "x^2 - 5*x + 6 = 0"}),
    "simplifyExpression": ("/calc/simplify", {"expression": "(x+1)^3", "mode": "expand"}),
    "differentiateExpression": ("/calc/derivative", {"expression": "x^3 + sin(x)"}),
}

# Invalid calls of several kinds, each answered with a 4xx.
INVALID_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("/holidays/list", {"country": "US"}),                                # missing parameter
    ("/holidays/list", {"country": "US", "year": "abc"}),                 # mistyped
    ("/holidays/list", {"country": "US", "year": 99999}),                 # absurd year
    ("/holidays/check", {"country": "'; DROP TABLE users; --", "date": "2024-01-01"}),
    ("/airports/lookup", {"code": "ZZZ"}),                                # unknown code
    ("/countries/lookup", {"country": "../../etc/passwd"}),
    ("/cities/search", {"name": "{{7*7}}"}),
    ("/time/now", {"timezone": "Mars/Olympus_Mons"}),
    ("/time/now", {"timezone": "UTC", "at": "9999-01-01T00:00:00Z"}),
    ("/sun/times", {"latitude": 1e308, "longitude": 0, "date": "2024-01-01"}),
    ("/units/convert", {"value": 1, "from_unit": "meter", "to_unit": "kilogram"}),
    ("/currency/convert", {"amount": 1, "from_currency": "USD", "to_currency": "XYZ"}),
    ("/jokes/random", {"category": "knock-knock"}),
    ("/calc/evaluate", {"expression": "__import__('os').system('true')"}),
    ("/calc/evaluate", {"expression": "x" * 500}),
    ("/nowhere", {}),
]


def sample_requests(count: int, invalid_share: float = 0.3, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """A reproducible mix of valid and invalid calls."""
    rng = random.Random(seed)
    valid = list(EXAMPLE_CALLS.values())
    return [rng.choice(INVALID_CALLS) if rng.random() < invalid_share else rng.choice(valid) for _ in range(count)]


@dataclass
class LoadReport:
    requests: int
    concurrency: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)   # transport errors by exception type
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        hist = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        errs = ", ".join(f"{name}: {n}" for name, n in self.errors.items()) or "none"
        mean = statistics.fmean(self.latencies_ms) if self.latencies_ms else 0.0
        return (f"{self.requests} requests, concurrency {self.concurrency}, {self.seconds:.1f} s, "
                f"{self.requests_per_s:.0f} requests/s\n  statuses: {hist}\n  connection errors: {errs}\n"
                f"  latency ms: mean {mean:.1f}, p50 {self.percentile_ms(0.5):.1f}, p95 {self.percentile_ms(0.95):.1f}, "
                f"max {max(self.latencies_ms, default=0.0):.1f}")


async def _run(base_url: str, calls: list[tuple[str, dict[str, Any]]], concurrency: int, timeout: float) -> LoadReport:
    import httpx

    report = LoadReport(requests=len(calls), concurrency=concurrency, seconds=0.0)
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, trust_env=False) as client:
        async def worker() -> None:
            while True:
                try:
                    path, params = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    response = await client.get(path, params=params)
                    report.statuses[response.status_code] += 1
                except httpx.HTTPError as exc:  # connect/read errors, timeouts
                    report.errors[type(exc).__name__] += 1
                report.latencies_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        report.seconds = time.perf_counter() - started
    return report


def run_load(base_url: str, requests: int = 2000, concurrency: int = 16, *, invalid_share: float = 0.3,
             seed: int = 0, timeout: float = 30.0) -> LoadReport:
    """Send ``requests`` mixed calls with ``concurrency`` in flight to a loopback server; blocks until done."""
    host = urlsplit(base_url).hostname or ""
    check_loopback(host)
    if not 1 <= requests <= 1_000_000 or not 1 <= concurrency <= 256:
        raise ValueError("requests must be 1..1,000,000 and concurrency 1..256")
    calls = sample_requests(requests, invalid_share, seed)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_run(base_url, calls, concurrency, timeout))
    # Called from a running event loop (e.g. a Jupyter cell): run the load in a worker thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _run(base_url, calls, concurrency, timeout)).result()
