"""Typed values, code-written requests, schema responses, grounded answers and the corpus-quality
report (issue: data worth learning from). No model: these are the parts code writes."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from doubles import ScriptedModel
from toolalpaca_utils.agents import instruction_problems, missing_values, typed_call
from toolalpaca_utils.agents.requests import FRAMES, bank_request
from toolalpaca_utils.agents.responses import SchemaExecutor, answer_problems, response_body, verbalise
from toolalpaca_utils.corpus import save_tools
from toolalpaca_utils.openapi import function_schemas, record_spec, validate_arguments
from toolalpaca_utils.quality import corpus_quality, is_description_fragment
from toolalpaca_utils.simulation import SimulationConfig, simulate
from toolalpaca_utils.saying import mentioned
from toolalpaca_utils.values import sample_value

FIXTURE = Path(__file__).parent / "fixtures" / "toolalpaca_tools.json"


def records() -> list[dict]:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name,schema", [
    ("country", {"type": "string", "description": "ISO 3166 code"}), ("country", {"type": "string"}),
    ("start_date", {"type": "string", "format": "date"}), ("limit", {"type": "integer", "minimum": 1, "maximum": 5}),
    ("year", {"type": "integer"}), ("latitude", {"type": "number"}), ("email", {"type": "string"}),
    ("units", {"type": "string", "enum": ["metric", "imperial"]}), ("dataType", {"type": "string"}),
    ("only_open", {"type": "boolean"}), ("timezone", {"type": "string"}), ("currency", {"type": "string"}),
    ("from_unit", {"type": "string"}), ("pickup_time", {"type": "string"}),
])
def test_typed_values_are_schema_valid_said_and_seeded(name, schema):
    for seed in range(25):
        v = sample_value(name, schema, random.Random(seed))
        assert not validate_arguments({"type": "object", "properties": {name: schema}}, {name: v.value}), v
        assert mentioned(v.value, f"Please use {v.said} for this."), v
        assert v == sample_value(name, schema, random.Random(seed))  # a run repeats exactly


@pytest.mark.parametrize("name,description,kind", [
    ("origin", "IATA or ICAO code of the departure airport, e.g. 'JFK'.", "airport"),
    ("code", "Airport code (IATA)", "airport"),
    ("name", "City name, e.g. 'Springfield'.", "city"),
    ("destination", "Name of the second city, e.g. 'Berlin'.", "city"),
    ("base", "ISO 4217 code of the base currency", "currency"),
    ("from_unit", "Unit of the value", "unit"),
    ("expression", "Math expression with numbers and + - * /", "math"),
    ("query", "Word to look for, e.g. 'airport'", "faker:word"),  # an example's word chooses nothing
    ("author", "The author's full name", "faker:name"),
])
def test_a_generic_name_takes_its_kind_from_the_description(name, description, kind):
    schema = {"type": "string", "description": description}
    for seed in range(10):
        v = sample_value(name, schema, random.Random(seed))
        assert v.kind == kind and mentioned(v.value, f"Please use {v.said} for this."), v
    if kind == "airport":  # a code is asked for: the call carries the 3-letter code
        assert len(sample_value(name, schema, random.Random(0)).value) == 3


def test_code_written_equations_have_one_equals_sign_and_expressions_none():
    for seed in range(20):
        eq = sample_value("equation", {"type": "string"}, random.Random(seed)).value
        expr = sample_value("expression", {"type": "string"}, random.Random(seed)).value
        assert eq.count("=") == 1 and "x" in eq and "=" not in expr


def test_an_optional_parameter_without_a_known_kind_is_left_out_of_a_typed_call():
    """A guessed word is kept where the call needs a value, never where it may go without one."""
    from toolalpaca_utils.realtools import real_tool_records

    holidays = next(r for r in real_tool_records() if r["Name"] == "PublicHolidays")
    calls = [typed_call(holidays, random.Random(seed), optional_share=1.0, function="listPublicHolidays")[1]
             for seed in range(10)]
    assert all("subdivision" not in values and {"country", "year"} <= set(values) for values in calls)
    assert sample_value("subdivision", {"type": "string"}, random.Random(0)).kind.startswith("guess:")


def test_values_said_in_another_form_are_mentioned_and_wrong_ones_are_not():
    assert mentioned("2023-05-01", "holidays on May 1, 2023 please")
    assert mentioned("2023-05-01", "on 1 May 2023")
    assert not mentioned("2023-05-02", "on May 1, 2023")
    assert mentioned("DE", "what about Germany?") and not mentioned("DE", "what about France?")
    assert mentioned(12.5, "convert 12.50 dollars") and mentioned(1500, "about 1,500 people")
    assert not mentioned(15, "about 150 people")  # a number inside another is not said
    assert mentioned(5, "the five largest cities") and not mentioned(5, "the fifty largest") and not mentioned(5, "six")
    assert not mentioned("Paris", "weather in Parisville")
    # the normalisations the real tools need: a moment in prose, a currency, zone or unit by name
    assert mentioned("2023-05-01T14:30:00", "a pickup on May 1, 2023 at 2:30 PM")
    assert not mentioned("2023-05-01T14:30:00", "a pickup on May 1, 2023 at 3:30 PM")
    assert mentioned("GBP", "the price in British pounds") and not mentioned("GBP", "the price in euros")
    assert mentioned("Asia/Tokyo", "the time in Tokyo") and not mentioned("Asia/Tokyo", "the time in Kyoto")
    assert mentioned("degF", "in degrees Fahrenheit") and mentioned("mi", "5 miles") and mentioned("ft", "6 feet")
    assert not mentioned("degF", "in degrees Celsius")


def test_readings_carry_the_codes_of_named_currencies_zones_units_and_prose_moments():
    from toolalpaca_utils.saying import readings

    found = readings("Convert 30 degrees Celsius to Fahrenheit, and 5 miles into km")
    assert {"degC", "degree_Celsius", "degF", "degree_Fahrenheit", "mi", "mile", "km"} <= set(found)
    found = readings("If it is 9:00 in New York on 3 March 2024 at 09:00, what time is it in London?")
    assert {"America/New_York", "Europe/London", "2024-03-03", "2024-03-03T09:00:00"} <= set(found)
    assert {"USD", "JPY"} <= set(readings("How many Japanese yen for 20 US dollars?"))
    assert "2023-05-01T14:30:00" in readings("May 1, 2023 at 2:30 PM")


def test_typed_call_fills_required_parameters_and_reports_an_unmeetable_pattern():
    rec = records()[0]
    for seed in range(10):
        name, values = typed_call(rec, random.Random(seed))
        schema = function_schemas(record_spec(rec))[name]
        assert set(schema.get("required") or []) <= set(values)
        assert not validate_arguments(schema, {k: v.value for k, v in values.items()})
    spec_fn = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[0-9]{9}$"}},
               "required": ["code"]}
    rec2 = dict(rec)
    import toolalpaca_utils.agents.user as user
    original = user.function_schemas
    user.function_schemas = lambda spec: {"f": spec_fn}
    try:
        with pytest.raises(ValueError, match="break the schema"):
            typed_call(rec2, random.Random(0))
    finally:
        user.function_schemas = original


def test_bank_requests_say_every_value_never_name_a_function_and_vary():
    frames = Counter()
    for rec in records():
        for seed in range(40):
            rng = random.Random(seed)
            name, values = typed_call(rec, rng)
            text, frame = bank_request(rec, name, values, rng)
            args = {k: v.value for k, v in values.items()}
            frames[frame] += 1
            assert missing_values(text, args) == [], (text, args)
            problems = instruction_problems(text, rec, args)
            assert "contains a placeholder" not in problems and "copies the prompt's format" not in problems
    assert len(frames) == len(FRAMES)
    assert max(frames.values()) / sum(frames.values()) < 0.2


def test_schema_executor_answers_json_that_agrees_with_the_request():
    rec = records()[0]
    name, values = typed_call(rec, random.Random(3))
    args = {k: v.value for k, v in values.items()}
    obs = SchemaExecutor()(rec, name, args, seed=1)
    assert obs.ok and response_body(obs.text) is not None
    body = response_body(obs.text)
    for key, value in (body.items() if isinstance(body, dict) else []):
        if key in args and not isinstance(value, (dict, list)):
            assert value == args[key]
    assert obs.text == SchemaExecutor()(rec, name, args, seed=1).text


def test_answer_checks_flag_the_old_corpus_answers_and_pass_verbalised_ones():
    obs = 'Status Code: 200. Response: {"city": "Oslo", "temperature": 21.5, "items": [{"name": "rain"}]}'
    assert "a status line" in answer_problems("200. Response: {", obs)
    assert "holds JSON" in answer_problems("200. Response: {", obs)
    assert answer_problems("A World of Wonder", obs) == ["quotes no value of the observation"]
    assert answer_problems("It is 21.5 degrees in Oslo.", obs) == []
    spoken = verbalise(obs, random.Random(0))
    assert answer_problems(spoken, obs) == [] and "Oslo" in spoken


def test_description_fragments_are_detected():
    desc = "The authentication method to use is the one your application registered."
    assert is_description_fragment("The authentication method to use is the ", desc)
    assert not is_description_fragment("password", desc)
    assert not is_description_fragment("Oslo", "City name, e.g. Oslo")  # short values are real values


def test_the_report_counts_values_said_in_another_form_than_the_call_writes():
    from toolalpaca_utils.quality import instance_checks

    inst = {"instruction": "What does a night in Oslo cost in British pounds on May 1, 2023?",
            "golden": [{"Action": "getCityPrices", "Action_Input": {"city": "Oslo", "currency": "GBP",
                                                                    "date": "2023-05-01", "month": "May"}}]}
    checks = instance_checks(inst, records()[0])
    assert (checks["said_values"], checks["values_in_request"], checks["values_in_another_form"]) == (4, 4, 2)


def test_simulated_corpus_meets_the_quality_bars(tmp_path):
    """The corpus the cpu defaults write, with a teacher whose answers quote nothing: every
    answer is then the verbaliser's, and the report says so."""
    teacher = ScriptedModel(['{"thought": "I have the response and can answer.", "final_answer": "A World of Wonder"}'])
    cfg = SimulationConfig(instructions_per_tool=6, n_eval_tools=1, seed=0)
    simulate(teacher, records(), cfg, out_dir=tmp_path, progress=False, workers=1)
    q = corpus_quality(tmp_path)
    assert q["instances"] >= 6
    assert q["description_fragment_values"] == 0 and q["status_line_answers"] == 0 and q["json_answers"] == 0
    assert q["values_in_request_pct"] >= 95 and q["answers_quoting_observation_pct"] >= 90
    assert q["duplicate_requests_within_splits"] == 0 and q["duplicate_requests_across_splits"] == 0
    assert q["answer_source:verbaliser_pct"] == 100.0 and q["request_source:bank_pct"] == 100.0
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert all(r["rejected_answer"] == "A World of Wonder" for r in rows)


class QuotingTeacher(ScriptedModel):
    """Answers with a string value of the response it was shown, after a thought of its own."""

    def reply(self, messages, schema):
        import re

        seen = " ".join(m["content"] for m in messages if "Response" in m["content"] or "Observation" in m["content"])
        value = (re.findall(r'"([A-Za-z][^"]{2,40})"', seen) or ["nothing"])[-1]
        self.texts = [json.dumps({"thought": "I need to call the API.", "final_answer": f"It is {value}."})]
        return super().reply(messages, schema)


def test_a_kept_teacher_answer_is_stored_after_the_corpus_thought(tmp_path):
    """The teacher thinks what it likes before its answer; the corpus keeps one thought
    (ANSWER_THOUGHT) before every answer grounded in a response, the teacher's included."""
    from toolalpaca_utils.agents import ANSWER_THOUGHT

    cfg = SimulationConfig(instructions_per_tool=6, n_eval_tools=1, seed=0)
    simulate(QuotingTeacher(), records(), cfg, out_dir=tmp_path, progress=False, workers=1)
    rows = [json.loads(line) for split in ("train", "eval")
            for line in (tmp_path / f"{split}.jsonl").read_text().splitlines()]
    kept = [r for r in rows if r.get("answer_source") == "teacher"]
    assert kept, "no teacher answer quoted its response"
    assert all(r["final"]["text"].startswith(f"Thought: {ANSWER_THOUGHT}\n") for r in rows if r.get("final"))


def test_quality_report_counts_junk(tmp_path):
    rec = records()[0]
    name = sorted(function_schemas(record_spec(rec)))[0]
    props = function_schemas(record_spec(rec))[name]["properties"]
    key = next(iter(props))
    junk = props[key].get("description") or "the value of the parameter to use"
    rec = json.loads(json.dumps(rec))
    row = {"id": "a", "tool": rec["Name"], "instruction": "Can you help me with this?",
           "golden": [{"Action": name, "Action_Input": json.dumps({key: junk})}],
           "steps": [{"observation": "Status Code: 200. Response: {", "status": 200}],
           "final": {"text": "", "answer": "200. Response: {"}}
    save_tools(tmp_path, [rec])
    for split in ("train", "eval"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    (tmp_path / "rejects.jsonl").write_text("")
    q = corpus_quality(tmp_path)
    assert q["status_line_answers"] == 4 and q["json_answers"] == 4
    assert q["answers_quoting_observation_pct"] == 0.0
    assert q["duplicate_requests_within_splits"] == 2 and q["duplicate_requests_across_splits"] == 1
    if len(junk.split()) >= 3:
        assert q["description_fragment_values"] == 4


@pytest.mark.parametrize("name,schema", [
    ("country", {"type": "string", "description": "ISO 3166 code"}), ("start_date", {"type": "string", "format": "date"}),
    ("email", {"type": "string"}), ("timezone", {"type": "string"}), ("currency", {"type": "string"}),
    ("origin", {"type": "string", "description": "IATA code of the departure airport"}),
    ("name", {"type": "string", "description": "City name"}), ("author", {"type": "string"}),
    ("from_unit", {"type": "string", "description": "Unit of the value"}), ("pickup_time", {"type": "string"}),
    ("temperature_unit", {"type": "string", "description": "Unit of the temperature, a pint symbol"}),
])
def test_readings_are_the_values_a_request_says_the_other_way_round(name, schema):
    """What the corpus teaches (a value said as a name is called as its code, a prose date in ISO)
    is what grounded decoding may pick: every typed string value is among the readings of a
    request that says it, and every reading is a value the request says (saying.mentioned)."""
    from toolalpaca_utils.saying import readings

    for seed in range(15):
        v = sample_value(name, schema, random.Random(seed))
        text = f"Could you check {v.said}, please?"
        found = readings(text)
        assert v.value in found, (v, found)
        typed = found.for_parameter(name, schema)  # typed grounding: a letter ("l", "s") is a word too
        assert v.value in typed or found.kind_of(name, schema) is None or len(v.said) == 1, (v, found.by_kind)
        assert all(mentioned(r, text) for r in found)
        assert "please" in found and "please?" not in found and "Could you check" in found  # spans, ends stripped


@pytest.mark.parametrize("text, expression", [
    ("What is 17.5% of 2340?", "17.5/100*2340"), ("What is 2 to the power of 64?", "2^64"),
    ("Compute the square root of 2 to 30 significant digits.", "sqrt(2)"), ("twelve times seven?", "12*7"),
    ("Evaluate 12*7 + 3 please", "12*7 + 3"), ("What is (5 + 20)/3?", "(5 + 20)/3"), ("and sqrt(144)", "sqrt(144)"),
    ("What is 10 divided by 4?", "10/4"), ("Seven squared, please", "7^2"),
])
def test_an_expression_said_in_words_is_read_as_the_calculator_writes_it(text, expression):
    """Spoken arithmetic is a normalisation like a prose date: grounded decoding offers an
    expression parameter the calculator form, and the request is counted as saying it."""
    from toolalpaca_utils.saying import readings

    found = readings(text)
    assert found.for_parameter("expression", {"type": "string"}) == [expression]
    assert mentioned(expression, text) and expression in found


@pytest.mark.parametrize("text", ["Flights on 2024-05-01 at 10:30", "Call 555-123-4567", "at latitude 51.5, longitude -0.12",
                                  "Solve it for the 3 of us"])
def test_dates_phone_numbers_and_coordinates_are_no_expressions(text):
    from toolalpaca_utils.saying import readings

    assert readings(text).for_parameter("expression", {"type": "string"}) == []


def test_an_iso_moment_with_its_zone_is_a_date_time_reading():
    from toolalpaca_utils.saying import readings

    found = readings("What was the local time in Asia/Tokyo at 2024-03-15T12:00:00Z?")
    assert found.for_parameter("at", {"type": "string"}) == ["2024-03-15T12:00:00Z"]
    assert found.for_parameter("timezone", {"type": "string"}) == ["Asia/Tokyo"]


@pytest.mark.parametrize("text", ["Find a hotel in Baicheng from 2020-06-17.", "field (817)837-0673x641, thanks"])
def test_a_date_ending_a_sentence_and_a_phone_number_are_no_expressions(text):
    from toolalpaca_utils.spoken_math import expressions

    assert expressions(text) == []


@pytest.mark.parametrize("text, said", [
    ("Show the top 15 movers on XETRA.", [15]), ("at latitude 51.5, longitude -0.12 on 2024-09-22", [51.5, -0.12]),
    ("What is 17.5% of 2340?", []), ("Compute the square root of 2 to 30 significant digits.", [30]),
    ("field 266.555.9293 and 66", [66]), ("VIN 1HGCM82633A004352, co2 at 10:30", []), ("the ten largest cities", [10]),
    ("Which one is it?", []), ("Was May 1, 2023 a holiday? Show 3.", [3]),
])
def test_the_numbers_a_request_says_are_those_outside_its_dates_times_codes_and_arithmetic(text, said):
    from toolalpaca_utils.saying import readings

    assert readings(text).numbers == said
