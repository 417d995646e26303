"""Tool-record I/O: the HF dataset, the ToolAlpaca export/import, the rejects table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolalpaca_utils import openapi, tools

FIXTURE = Path(__file__).parent / "fixtures" / "toolalpaca_tools.json"


def _catalogue_record(name="Moon Phases", category="Science & Math"):
    functions = [{
        "name": "getMoonPhase", "description": "Moon phase on a date.", "method": "get",
        "parameters": [{"name": "date", "type": "string", "required": True, "description": "Day as YYYY-MM-DD."}],
        "output": {"description": "The phase.", "properties": [{"name": "phase", "type": "string", "description": ""}]},
    }]
    spec = openapi.build_spec(name, "Phases of the moon", functions)
    return openapi.record_from_spec(spec, name=name, description="Phases of the moon", category=category,
                                    link="https://moon.example.org", introduction="The Moon Phases API tells the phase.")


def test_import_fixture_keeps_every_field():
    raw = json.loads(FIXTURE.read_text())
    records = tools.import_toolalpaca(FIXTURE)
    assert [r["Name"] for r in records] == ["Tiny Library", "Length Converter"]
    for r, src in zip(records, raw):
        for key, value in src.items():
            assert r[key] == value, key
        assert r["source"] == "import" and r["base_url"] is None
        assert openapi.validate_spec(openapi.record_spec(r)) == []


def test_import_export_import_round_trip(tmp_path):
    raw = json.loads(FIXTURE.read_text())
    records = tools.import_toolalpaca(FIXTURE)
    out = tools.export_toolalpaca(records, tmp_path / "out.json")
    exported = json.loads(out.read_text())
    assert exported == raw  # ToolAlpaca fields identical, in the original order, no project fields
    assert [list(e) for e in exported] == [list(r) for r in raw]
    again = tools.import_toolalpaca(out)
    assert again == records


def test_export_can_carry_project_fields(tmp_path):
    rec = _catalogue_record()
    out = tools.export_toolalpaca([rec], tmp_path / "x.json", include_project_fields=True)
    assert json.loads(out.read_text())[0]["source"] == "catalogue"
    assert tools.import_toolalpaca(out) == [rec]


def test_save_and_load_dataset_round_trip(tmp_path):
    records = [_catalogue_record(), *tools.import_toolalpaca(FIXTURE)]
    rejects = [{"key": "k1", "name": "Broken API", "category": "Books", "reasons": ["attempt 1: spec_valid: bad"]}]
    paths = tools.save_toolset(records, rejects, tmp_path)
    assert (paths["dataset"] / "dataset_info.json").is_file()
    loaded = tools.load_toolset(tmp_path)
    assert loaded == records  # nested fields come back as dicts/lists; missing fields stay missing
    assert "Instances" not in loaded[0] and loaded[1]["Instances"] == records[1]["Instances"]
    assert tools.load_toolset(paths["dataset"]) == records
    assert tools.load_toolset(paths["export"]) == [
        {**r, "source": "import", "base_url": None} for r in records]  # the export drops project fields
    assert tools.read_rejects(tmp_path) == rejects

    from datasets import load_from_disk
    ds = load_from_disk(str(paths["dataset"]))
    assert ds.num_rows == 3
    assert ds.features["Function_Projection"].dtype == "string"  # nested fields as JSON text


def test_load_toolset_by_profile(tmp_path, monkeypatch):
    from toolalpaca_utils import runs

    monkeypatch.setenv("TOOLALPACA_RUNS", str(tmp_path))
    with pytest.raises(runs.MissingStageError, match="01_toolset"):
        tools.load_toolset("tiny")
    out = runs.stage_dir("tiny", "toolset", create=True)
    tools.save_toolset([_catalogue_record()], [], out)
    runs.write_manifest("tiny", "toolset", parameters={})
    assert [r["Name"] for r in tools.load_toolset("tiny")] == ["Moon Phases"]


def test_save_refuses_repeated_names(tmp_path):
    rec = _catalogue_record()
    with pytest.raises(tools.ToolRecordError, match="Moon Phases"):
        tools.save_toolset([rec, dict(rec)], [], tmp_path)


def test_save_empty_toolset(tmp_path):
    tools.save_toolset([], [{"key": "a", "reasons": ["x"]}], tmp_path)
    assert tools.load_toolset(tmp_path) == []
    assert json.loads((tmp_path / tools.EXPORT_FILE).read_text()) == []


def test_import_derives_missing_fields(tmp_path):
    raw = json.loads(FIXTURE.read_text())[1]
    for key in ("NLDocumentation", "Function_Description", "Function_Projection", "Introduction"):
        raw.pop(key)
    path = tmp_path / "partial.json"
    path.write_text(json.dumps([raw]))
    rec = tools.import_toolalpaca(path)[0]
    assert rec["Function_Projection"] == {"convertLength": ["/convert", "POST"]}
    assert "convertLength" in rec["NLDocumentation"] and rec["Introduction"] == ""


@pytest.mark.parametrize("content, match", [
    ("not json", "not JSON"),
    ('"a string"', "JSON list"),
    ('[1]', "not a tool object"),
    ('[{"Name": "X"}]', "Documentation"),
])
def test_import_rejects_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(tools.ToolRecordError, match=match):
        tools.import_toolalpaca(path)


def test_combine_records_keeps_first_of_a_name():
    a, b = _catalogue_record("A"), _catalogue_record("B")
    real = dict(_catalogue_record("A"), source="real")
    combined, skipped = tools.combine_records([real], [a, b])
    assert [r["Name"] for r in combined] == ["A", "B"] and combined[0]["source"] == "real"
    assert skipped == ["A"]
