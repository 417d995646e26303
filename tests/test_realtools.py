"""Real tools against a REAL server: valid and invalid calls, code-execution attempts, a bounded
loopback load test, the evaluation set's golden calls, tool records, and launcher cleanup."""
from __future__ import annotations

import importlib.util
import json
import re
import socket
import time
from collections import Counter

import httpx
import jsonschema
import psutil
import pytest

from toolalpaca_utils.procs import LIVE
from toolalpaca_utils.realtools import (RealToolsServer, TOOLS, eval_stats, load_real_eval, serve_realtools,
                                        to_toolalpaca_eval, tool_specs)
from toolalpaca_utils.realtools.evalset import execute_golden
from toolalpaca_utils.realtools.load import EXAMPLE_CALLS, run_load

pytestmark = pytest.mark.timeout(180)  # a hung server fails the module instead of blocking it
TIMEOUT = httpx.Timeout(20.0)  # likewise for every single request
INJECTIONS = ["'; DROP TABLE users; --", "../../etc/passwd", "{{7*7}}", "${jndi:ldap://x}", "<script>alert(1)</script>", "A" * 5000]


@pytest.fixture(scope="module")
def base_url(realtools_url):
    return realtools_url  # one server for the whole test session (conftest.py)


@pytest.fixture(scope="module")
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=TIMEOUT, trust_env=False) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.get("/openapi.json").json()


def operations(spec: dict) -> dict[str, tuple[str, dict]]:
    return {op["operationId"]: (path, op) for path, item in spec["paths"].items() for op in item.values()}


def response_validator(spec: dict, op: dict) -> jsonschema.Draft202012Validator:
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


def assert_clear_4xx(response: httpx.Response, what: str) -> str:
    assert 400 <= response.status_code < 500, f"{what}: expected 4xx, got {response.status_code}: {response.text[:300]}"
    detail = response.json().get("detail")
    assert isinstance(detail, str) and len(detail) > 10, f"{what}: no clear detail message: {response.text[:300]}"
    return detail


# ------------------------------------------------------------------------------------------------
# the app's shape
# ------------------------------------------------------------------------------------------------
def test_spec_follows_conventions(spec):
    ops = operations(spec)
    assert len(TOOLS) >= 9
    assert set(EXAMPLE_CALLS) == set(ops), "EXAMPLE_CALLS must cover exactly the app's operations"
    for op_id, (path, op) in ops.items():
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]+", op_id)
        assert set(spec["paths"][path]) == {"get"}
        assert op["summary"] and op["description"]
        tool = TOOLS[op["tags"][0]]
        assert path.startswith(tool.prefix + "/")
        for param in op.get("parameters", []):
            assert param["in"] == "query" and param.get("description"), (op_id, param["name"])
        assert "$ref" in op["responses"]["200"]["content"]["application/json"]["schema"]
    per_tool = {name: sum(1 for _, op in ops.values() if op["tags"] == [name]) for name in TOOLS}
    assert all(1 <= n <= 4 for n in per_tool.values()), per_tool
    assert "/health" not in spec["paths"]


def test_tool_specs_are_self_contained():
    specs = tool_specs(base_url="http://127.0.0.1:9")
    assert set(specs) == set(TOOLS)
    for name, tool_spec in specs.items():
        assert all(p.startswith(TOOLS[name].prefix + "/") for p in tool_spec["paths"])
        text = json.dumps(tool_spec)
        for ref in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
            assert ref in tool_spec["components"]["schemas"], (name, ref)
        assert tool_spec["servers"] == [{"url": "http://127.0.0.1:9"}]


# ------------------------------------------------------------------------------------------------
# valid and invalid calls of every endpoint
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op_id", sorted(EXAMPLE_CALLS))
def test_valid_call_returns_schema_valid_body(client, spec, op_id):
    path, params = EXAMPLE_CALLS[op_id]
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text[:500]
    errors = list(response_validator(spec, operations(spec)[op_id][1]).iter_errors(response.json()))
    assert not errors, [e.message for e in errors[:3]]


def bad_variants(op: dict, valid: dict) -> list[tuple[str, dict]]:
    """Missing, mistyped, absurd and injection-looking values for every parameter of one operation."""
    variants: list[tuple[str, dict]] = [("unknown parameter", {**valid, "bogus": "1"})]
    for param in op.get("parameters", []):
        name, schema = param["name"], param["schema"]
        schema = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
        kind, fmt = schema.get("type"), schema.get("format")
        if param["required"]:
            variants.append((f"missing {name}", {k: v for k, v in valid.items() if k != name}))
        if kind in ("integer", "number"):
            values = ["abc", "1e999", "9" * 40, "-" + "9" * 40, "nan"]
        elif kind == "boolean":
            values = ["maybe"]
        elif fmt in ("date", "date-time"):
            values = ["2024-13-45", "9999-12-31", "1066-10-14", "yesterday", INJECTIONS[0]]
        elif "enum" in schema:
            values = ["no-such-value", INJECTIONS[2]]
        else:
            values = INJECTIONS
        variants += [(f"{name}={v[:20]!r}", {**valid, name: v}) for v in values]
    return variants


@pytest.mark.parametrize("op_id", sorted(EXAMPLE_CALLS))
def test_bad_input_gives_clear_4xx(client, spec, op_id):
    path, valid = EXAMPLE_CALLS[op_id]
    op = operations(spec)[op_id][1]
    for what, params in bad_variants(op, valid):
        assert_clear_4xx(client.get(path, params=params), f"{op_id} {what}")


SEMANTIC_ERRORS = [
    ("/airports/lookup", {"code": "ZZZ"}, "ZZZ"),
    ("/airports/distance", {"origin": "JFK", "destination": "QQQQ"}, "destination"),
    ("/countries/lookup", {"country": "Atlantis"}, "country"),
    ("/countries/subdivisions", {"country": "US", "type": "Canton"}, "type"),
    ("/cities/distance", {"origin": "Xyzzyville", "destination": "Paris"}, "origin"),
    ("/holidays/list", {"country": "US", "year": 3000}, "year"),
    ("/holidays/list", {"country": "US", "year": 2024, "subdivision": "ZZ"}, "subdivision"),
    ("/holidays/check", {"country": "US", "date": "2024-02-30"}, "date"),
    ("/holidays/next", {"country": "QQ", "start_date": "2024-01-01"}, "country"),
    ("/time/now", {"timezone": "Mars/Base"}, "timezone"),
    ("/time/convert", {"datetime": "2024-01-01T10:00:00+02:00", "from_timezone": "UTC", "to_timezone": "UTC"}, "datetime"),
    ("/time/city", {"city": "Paris", "country": "Narnia"}, "country"),
    ("/sun/times", {"latitude": 91, "longitude": 0, "date": "2024-01-01"}, "latitude"),
    ("/sun/city", {"city": "Oslo", "date": "1800-01-01"}, "date"),
    ("/units/convert", {"value": 1, "from_unit": "meter", "to_unit": "second"}, "convert"),
    ("/units/convert", {"value": 1, "from_unit": "10**10**10", "to_unit": "m"}, "from_unit"),
    ("/units/convert", {"value": 1e300, "from_unit": "m", "to_unit": "km"}, "value"),
    ("/units/info", {"unit": "blorp"}, "unit"),
    ("/currency/convert", {"amount": 1, "from_currency": "USD", "to_currency": "EUR", "date": "1990-01-01"}, "date"),
    ("/currency/convert", {"amount": 1, "from_currency": "USD", "to_currency": "RUB", "date": "2024-01-02"}, "RUB"),
    ("/currency/rates", {"base": "EUR", "symbols": "USD,XYZ"}, "symbols"),
    ("/jokes/random", {"category": "chuck", "language": "fr"}, "category"),
    ("/jokes/list", {"offset": 10**9}, "offset"),
    ("/calc/evaluate", {"expression": "1/0"}, "zero"),
    ("/calc/evaluate", {"expression": "x + 1"}, "variable"),
    ("/calc/evaluate", {"expression": "2^2^2^2^2^2"}, "digits"),
    ("/calc/evaluate", {"expression": "factorial(10^6)"}, "factorial"),
    ("/calc/solve", {"equation": "x = 1 = 2"}, "="),
    ("/calc/derivative", {"expression": "x*y"}, "variable"),
    ("/no/such/endpoint", {}, "endpoint"),
]


@pytest.mark.parametrize("path,params,hint", SEMANTIC_ERRORS)
def test_unknown_codes_and_absurd_values_are_explained(client, path, params, hint):
    detail = assert_clear_4xx(client.get(path, params=params), f"{path} {params}")
    assert hint.lower() in detail.lower(), detail


def test_wrong_method_and_repeated_parameter(client):
    assert_clear_4xx(client.post("/holidays/list", params={"country": "US", "year": 2024}), "POST")
    assert_clear_4xx(client.get("/holidays/list?country=US&year=2024&year=2025"), "repeated")


def test_expensive_calculation_is_stopped_not_hung(client):
    started = time.monotonic()
    response = client.get("/calc/simplify", params={"expression": "(a+b+c+d+e+f)^150", "mode": "expand"})
    detail = assert_clear_4xx(response, "expensive expand")
    assert time.monotonic() - started < 15, detail
    # the worker that was killed is replaced: the calculator still answers
    assert client.get("/calc/evaluate", params={"expression": "6*7"}).json()["exact"] == "42"


# ------------------------------------------------------------------------------------------------
# the calculator cannot execute code
# ------------------------------------------------------------------------------------------------
def test_calculator_cannot_execute_code(client, tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        "().__class__.__bases__[0].__subclasses__()",
        "().__class__.__bases__",
        "lambda: 0",
        "(lambda x: x)(1)",
        f"exec(\"open('{marker}', 'w')\")",
        "eval('1+1')",
        "open('/etc/passwd').read()",
        "globals()",
        "x.__dict__",
        "getattr(x, 'real')",
        "import os",
        "[c for c in range(3)]",
        "Symbol('x')",
        "sympify('1')",
        "x.evalf()",
    ]
    for expression in payloads:
        for path, key in (("/calc/evaluate", "expression"), ("/calc/simplify", "expression"),
                          ("/calc/derivative", "expression"), ("/calc/solve", "equation")):
            assert_clear_4xx(client.get(path, params={key: expression}), f"{path} {expression!r}")
    assert not marker.exists(), "a calculator payload was executed"


# ------------------------------------------------------------------------------------------------
# bounded load test on loopback
# ------------------------------------------------------------------------------------------------
def test_load_2000_mixed_requests_concurrency_16(base_url):
    report = run_load(base_url, requests=2000, concurrency=16, invalid_share=0.3, seed=7)
    print("\n" + report.summary())
    assert not report.errors, report.errors
    assert report.server_errors == 0, report.statuses
    assert sum(report.statuses.values()) == 2000
    assert sum(n for code, n in report.statuses.items() if 400 <= code < 500) > 300  # the invalid share


def test_load_refuses_non_loopback_targets():
    with pytest.raises(ValueError):
        run_load("http://192.0.2.1:8000", requests=1)


# ------------------------------------------------------------------------------------------------
# the evaluation set
# ------------------------------------------------------------------------------------------------
def test_eval_set_golden_calls_execute(base_url, spec):
    items = load_real_eval()
    stats = eval_stats(items)
    print("\n" + stats.to_string())
    ops = operations(spec)
    assert len(items) >= 80
    assert {it["tool"] for it in items} == set(TOOLS)
    used = Counter(c["Action"] for it in items for c in it["golden"])
    assert set(used) == set(ops), f"operations without golden calls: {set(ops) - set(used)}"
    assert min(used.values()) >= 2, used
    multi = sum(len(it["golden"]) > 1 for it in items) / len(items)
    assert 0.25 <= multi <= 0.45, multi
    results = execute_golden(items, base_url)
    failed = [r for r in results if r["status"] != 200]
    assert not failed, failed[:5]
    for r in results:  # bodies also match the documented response schemas
        op_id = next(op_id for op_id, (path, _) in ops.items() if path == r["path"])
        assert not list(response_validator(spec, ops[op_id][1]).iter_errors(r["body"])), r["id"]


@pytest.fixture(scope="module")
def records(base_url) -> list[dict]:
    if importlib.util.find_spec("toolalpaca_utils.openapi") is None:
        pytest.skip("toolalpaca_utils.openapi is not written yet")
    from toolalpaca_utils.realtools import real_tool_records

    return real_tool_records(base_url)


def test_eval_set_converts_to_toolalpaca_format(records):
    items = load_real_eval()
    records = to_toolalpaca_eval(items, records)
    assert {r["Name"] for r in records} == set(TOOLS)
    assert sum(len(r["Instructions"]) for r in records) == len(items)
    for record in records:
        assert len(record["Instructions"]) == len(record["Golden_Answers"])
        for answer in record["Golden_Answers"]:
            for step in answer:
                assert step["Action"] in record["Function_Projection"]
                json.loads(step["Action_Input"])


# ------------------------------------------------------------------------------------------------
# tool records
# ------------------------------------------------------------------------------------------------
def test_real_tool_records_have_valid_documentation(records, base_url):
    from openapi_spec_validator import validate

    assert [r["Name"] for r in records] == list(TOOLS)
    for record in records:
        documentation = json.loads(record["Documentation"])
        validate(documentation)
        assert record["source"] == "real" and record["base_url"] == base_url
        assert record["Category"] == TOOLS[record["Name"]].category
        assert set(record["Function_Projection"]) == {
            op["operationId"] for item in documentation["paths"].values() for op in item.values()}
        assert record["NLDocumentation"].strip()


# ------------------------------------------------------------------------------------------------
# the launcher
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_launcher_refuses_non_loopback_hosts(host):
    with pytest.raises(ValueError):
        with serve_realtools(host=host):
            pass


def _running_realtools() -> list[RealToolsServer]:
    """The real-tools servers in the services' atexit registry (the LLM server may be there too)."""
    return [s for s in LIVE if isinstance(s, RealToolsServer)]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_launcher_leaves_nothing_behind_even_on_ctrl_c():
    with pytest.raises(KeyboardInterrupt):
        with serve_realtools(startup_timeout=90) as url:
            server = next(s for s in _running_realtools() if s.base_url == url)
            httpx.get(url + "/calc/evaluate", params={"expression": "1+1"}, timeout=TIMEOUT)  # workers running
            pids = [server.pid] + [p.pid for p in psutil.Process(server.pid).children(recursive=True)]
            assert len(pids) >= 3, "expected the server and its calculator workers"
            port = server.port
            raise KeyboardInterrupt
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids), [pid for pid in pids if not _gone(pid)]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not any(s.base_url == url for s in _running_realtools())

