"""Specs → tool records, argument checks, and the shared ReAct format (no model needed)."""
from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from toolalpaca_utils.openapi import (
    SpecError, build_spec, function_schemas, record_from_spec, record_spec, validate_arguments, validate_spec,
)
from toolalpaca_utils.react import (
    build_messages, format_action, format_final, parse_step, step_from_json, step_schema, system_prompt,
)

FUNCTIONS = [
    {"name": "searchBooks", "description": "Find books by title words.",
     "parameters": [{"name": "query", "type": "string", "required": True, "description": "Words of the title"},
                    {"name": "limit", "type": "integer", "required": False, "description": "Most results"}],
     "output": {"description": "Matching books", "properties": [{"name": "books", "type": "array", "description": "hits"}]}},
    {"name": "getBook", "description": "One book by its id.", "method": "get",
     "parameters": [{"name": "bookId", "type": "string", "required": True, "description": "Book id"},
                    {"name": "format", "type": "string", "required": False, "description": "Edition",
                     "enum": ["paper", "ebook"]}],
     "output": {"description": "The book", "properties": [{"name": "title", "type": "string", "description": "t"}]}},
    {"name": "addReview", "description": "Post a review.", "method": "post",
     "parameters": [{"name": "bookId", "type": "string", "required": True, "description": "Book id"},
                    {"name": "stars", "type": "integer", "required": True, "description": "1 to 5"}],
     "output": {"description": "Stored review"}},
]


@pytest.fixture
def record():
    spec = build_spec("OpenShelf", "A library catalogue.", FUNCTIONS)
    return record_from_spec(spec, name="OpenShelf", description="A library catalogue.", category="Books")


def test_built_spec_is_valid_openapi(record):
    spec = record_spec(record)
    validate(spec)
    assert validate_spec(spec) == []
    assert record["Function_Projection"] == {
        "searchBooks": ["/search-books", "GET"], "getBook": ["/get-book", "GET"], "addReview": ["/add-review", "POST"]}


def test_derived_documentation(record):
    assert set(record["Function_Description"]) == {"searchBooks", "getBook", "addReview", "components"}
    assert "Required. string. Words of the title" in record["Function_Description"]["searchBooks"]
    assert 'One of: paper, ebook' in record["NLDocumentation"]
    assert json.loads(record["Documentation"])["info"]["title"] == "OpenShelf"


def test_function_schemas_cover_query_and_body(record):
    schemas = function_schemas(record_spec(record))
    assert schemas["searchBooks"]["required"] == ["query"]
    assert schemas["addReview"]["required"] == ["bookId", "stars"]
    assert validate_arguments(schemas["getBook"], {"bookId": "b1", "format": "ebook"}) == []
    problems = validate_arguments(schemas["getBook"], {"format": "vinyl", "extra": 1})
    assert any("bookId" in p for p in problems) and any("vinyl" in p for p in problems)
    assert validate_arguments(schemas["getBook"], ["not", "a", "dict"])


def test_invalid_specs_are_explained():
    assert validate_spec("nope")
    assert validate_spec({"openapi": "3.0.3", "info": {"title": "x"}, "paths": {}})  # info.version missing
    dup = build_spec("Dup", "d", [FUNCTIONS[0], {**FUNCTIONS[0]}])
    dup["paths"]["/other"] = {"get": {**dup["paths"]["/search-books"]["get"]}}
    assert any("duplicate operationId" in p or "not unique" in p for p in validate_spec(dup))
    with pytest.raises(SpecError):
        record_from_spec({"openapi": "3.0.3"}, name="X", description="d", category="c")


def test_react_round_trip(record):
    text = format_action("look it up", "getBook", {"bookId": "b7"})
    step = parse_step(text)
    assert (step.kind, step.action, step.action_input) == ("action", "getBook", {"bookId": "b7"})
    final = parse_step(format_final("done", "The book is Dune."))
    assert (final.kind, final.final_answer) == ("final", "The book is Dune.")
    msgs = build_messages(record, "Find Dune", [(text, "Status Code: 200. Response: {}"), ("Thought: x\nFinal Answer: y", None)])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[3]["content"].startswith("Observation: ")
    assert "getBook" in system_prompt(record)


@pytest.mark.parametrize("text,error", [
    ("", "no 'Action:'"),
    ("Thought: hmm\nAction: getBook", "missing 'Action Input:'"),
    ("Action: getBook\nAction Input: bookId=3", "not a JSON object"),
    ("Action: getBook\nAction Input: {\"bookId\": ", "not valid JSON"),
    ("Action: getBook\nAction Input: [1, 2]", "not a JSON object"),
    ("Final Answer:", "is empty"),
])
def test_parse_step_explains_invalid_replies(text, error):
    step = parse_step(text)
    assert step.kind == "invalid" and error in step.error


def test_parse_step_ignores_hallucinated_observations():
    step = parse_step('Thought: t\nAction: getBook\nAction Input: {"bookId": "1"}\nObservation: fake\nFinal Answer: x')
    assert step.kind == "action" and step.final_answer is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=50).map(lambda b: b.decode("latin-1")),
                 st.lists(st.sampled_from(["Thought:", "Action:", "Action Input:", "Final Answer:", "{", "}",
                                           '"a"', ":", "1", "\n", "getBook", "Observation:", " "]),
                          max_size=40).map("".join), st.none(), st.integers()))
def test_parse_step_never_raises(text):
    step = parse_step(text)
    assert step.kind in ("action", "final", "invalid")
    if step.kind == "invalid":
        assert step.error
    if step.kind == "action":
        assert isinstance(step.action_input, dict)


def test_step_schema_binds_each_function_to_its_arguments(record):
    schema = step_schema(record)
    names = [b["properties"]["action"]["const"] for b in schema["anyOf"] if "action" in b["properties"]]
    assert names == ["searchBooks", "getBook", "addReview", "getDetails"]
    ok = {"thought": "t", "action": "getBook", "action_input": {"bookId": "b"}}
    jsonschema.validate(ok, schema)
    with pytest.raises(jsonschema.ValidationError):  # the right arguments for the wrong function
        jsonschema.validate({"thought": "t", "action": "addReview", "action_input": {"bookId": "b"}}, schema)
    text, parsed = step_from_json(ok)
    assert parse_step(text).action_input == parsed.action_input == {"bookId": "b"}


def test_a_step_grammar_writes_the_react_text_of_each_branch(record):
    """The grammar of a constrained step is ReAct text: a thought, then one branch per function
    (its name and its own arguments' grammar) or the final answer; a branch that is neither is refused."""
    from toolalpaca_utils.step_grammar import step_grammar

    grammar = step_grammar(step_schema(record))
    root = grammar.splitlines()[0]
    assert root.startswith('root ::= "Thought: " thought "\\n" (')
    for name in ("searchBooks", "getBook", "addReview", "getDetails"):
        assert f'"Action: " "{name}" "\\nAction Input: "' in root
    assert '"Final Answer: "' in root and "thought ::= [^\\n]{1,200}" in grammar
    assert '"Final Answer: "' not in step_grammar(step_schema(record, allow_final=False)).splitlines()[0]
    with pytest.raises(ValueError, match="a call or a final answer"):
        step_grammar({"anyOf": [{"type": "object", "properties": {"thought": {"type": "string"}, "x": {}}}]})


def test_a_documented_thought_chooses_the_call_that_follows_it(record):
    """thought "documented": each call branch's thought is its function's documentation line, so a
    step whose thought reads one function's line and whose action names another is refused."""
    from toolalpaca_utils.agents import Episode
    from toolalpaca_utils.agents.episode import ANSWER_THOUGHT, ASK_THOUGHT, FINAL_SCHEMA, call_thought

    episode = Episode(record, "Find the book Dune for me", None, mode="constrained", tool_choice="required",
                      thought="documented")
    thoughts = {b["properties"]["action"]["const"]: b["properties"]["thought"] for b in episode.first_schema["anyOf"]}
    assert thoughts == {n: {"const": call_thought(record, n)} for n in ("searchBooks", "getBook", "addReview")}
    assert thoughts["getBook"] == {"const": "The request needs this: One book by its id."}
    step = {"thought": thoughts["getBook"]["const"], "action": "getBook", "action_input": {"bookId": "b"}}
    jsonschema.validate(step, episode.first_schema)
    with pytest.raises(jsonschema.ValidationError):  # searchBooks's line, then getBook
        jsonschema.validate({**step, "thought": thoughts["searchBooks"]["const"]}, episode.first_schema)
    later = {b["properties"].get("action", {}).get("const"): b["properties"]["thought"] for b in episode.schema["anyOf"]}
    assert later["getDetails"] == {"const": ASK_THOUGHT}  # every thought of a documented step is a choice
    assert later[None] == episode.final_schema["properties"]["thought"] == {"const": ANSWER_THOUGHT}  # the answer's
    free = Episode(record, "Find the book Dune for me", None, mode="constrained", tool_choice="required")
    assert free.first_schema == step_schema(record, with_get_details=False, allow_final=False)
    assert free.final_schema == FINAL_SCHEMA
    with pytest.raises(ValueError, match="thought must be one of"):
        Episode(record, "x", None, mode="constrained", thought="summary")


def test_a_grounded_step_passes_only_given_values_that_fit_each_free_string(record):
    """Grounded decoding: a free string (no enum) becomes an enum of the request's readings its own
    schema accepts; the later steps' schema is untouched."""
    from toolalpaca_utils.agents import Episode
    from toolalpaca_utils.agents.episode import MODES
    from toolalpaca_utils.react import _fitting

    schema = step_schema(record, values=["Dune", "2024-05-01", "May 1, 2024"])
    jsonschema.validate({"thought": "t", "action": "getBook", "action_input": {"bookId": "Dune"}}, schema)
    with pytest.raises(jsonschema.ValidationError):  # a value the request does not say
        jsonschema.validate({"thought": "t", "action": "getBook", "action_input": {"bookId": "Dunes"}}, schema)
    assert step_schema(record, values=[]) == step_schema(record)
    assert _fitting({"type": "string", "format": "date"}, ["May 1, 2024", "2024-05-01"]) == ["2024-05-01"]
    assert _fitting({"type": "string", "pattern": "^[A-Z]{2}$"}, ["DE", "Germany"]) == ["DE"]
    episode = Episode(record, "Find the book Dune for me", None, mode="grounded", tool_choice="required")
    branches = {b["properties"]["action"]["const"]: b["properties"]["action_input"]
                for b in episode.first_schema["anyOf"]}
    assert "getDetails" not in branches and "Dune" in branches["getBook"]["properties"]["bookId"]["enum"]
    assert episode.schema == step_schema(record)  # later steps may pass on a response's values
    with pytest.raises(ValueError, match="must be one of"):
        Episode(record, "x", None, mode="grounding")
    assert MODES == ("free", "constrained", "grounded", "retrieved")


def test_typed_grounding_offers_a_parameter_the_values_of_its_kind():
    """A free string of a known kind (a currency, a date, a unit) takes the request's values of
    that kind, as the corpus carries them (codes, ISO dates), not any span of the request; an
    optional one whose kind the request does not say is left out, and one whose kind only it takes
    is passed. Other parameters, an enum and a plain list of values are as before."""
    from toolalpaca_utils.react import _bounded
    from toolalpaca_utils.saying import readings

    args = {"type": "object", "required": ["amount", "from_currency", "to_currency"], "properties": {
        "amount": {"type": "number"}, "from_currency": {"type": "string"}, "to_currency": {"type": "string"},
        "on": {"type": "string", "format": "date"}, "note": {"type": "string"},
        "speed_unit": {"type": "string", "enum": ["kph", "mph"]}}}
    said = _bounded(args, readings("How much were 100 US dollars in Japanese yen on May 3, 2020? Note: cash"))
    props = said["properties"]
    assert set(props["from_currency"]["enum"]) == set(props["to_currency"]["enum"]) == {"USD", "JPY"}
    assert props["on"]["enum"] == ["2020-05-03"] and "on" in said["required"]  # only "on" takes a date
    assert "cash" in props["note"]["enum"] and "Japanese yen" in props["note"]["enum"]  # no kind: any span
    assert props["speed_unit"] == args["properties"]["speed_unit"] and "speed_unit" not in said["required"]
    unsaid = _bounded(args, readings("How much were 100 US dollars in Japanese yen?"))
    assert "on" not in unsaid["properties"] and unsaid["required"] == args["required"]
    spans = _bounded(args, ["100", "yen", "2020-05-03"])  # a plain list: every free string alike
    assert spans["properties"]["from_currency"]["enum"] == ["100", "yen", "2020-05-03"]
    assert spans["properties"]["on"]["enum"] == ["2020-05-03"] and spans["required"] == args["required"]
    units = _bounded({"type": "object", "properties": {"from_unit": {"type": "string"}}},
                     readings("Convert 98.6 degrees Fahrenheit to Celsius."))
    assert set(units["properties"]["from_unit"]["enum"]) == {"degF", "degree_Fahrenheit", "degC", "degree_Celsius"}
    country = {"type": "string", "description": "Country name or ISO code"}
    poland = readings("Was May 1, 2023 a public holiday in Poland?")
    assert poland.for_parameter("country", {"type": "string"}) == ["PL", "Poland"]  # a name where it is written
    assert poland.for_parameter("country", country) == ["PL"]  # "code" asked for: the code only


def test_typed_grounding_offers_a_number_parameter_the_numbers_the_request_says():
    """A number is one the request says; an optional numeric parameter is passed when a number is
    left over for it and left out when none is; a number outside its bounds is not offered."""
    from toolalpaca_utils.react import _bounded
    from toolalpaca_utils.saying import readings

    movers = {"type": "object", "required": ["exchange"], "properties": {
        "exchange": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 100}}}
    top = _bounded(movers, readings("Show the top 15 movers on XETRA."))
    assert top["properties"]["limit"]["enum"] == [15] and top["required"] == ["exchange", "limit"]
    assert "limit" not in _bounded(movers, readings("Show the movers on XETRA."))["properties"]
    too_many = _bounded(movers, readings("Show the top 500 movers on XETRA."))
    assert "enum" not in too_many["properties"]["limit"] and too_many["required"] == ["exchange"]
    calc = {"type": "object", "required": ["expression"], "properties": {
        "expression": {"type": "string"}, "digits": {"type": "integer", "minimum": 1, "maximum": 50}}}
    assert _bounded(calc, readings("What is 2 to the power of 64?"))["properties"] == {
        "expression": {"type": "string", "enum": ["2^64"]}}  # 2 and 64 are the expression's
    sqrt = _bounded(calc, readings("Compute the square root of 2 to 30 significant digits."))
    assert sqrt["properties"]["digits"]["enum"] == [30] and sqrt["required"] == ["expression", "digits"]
    assert _bounded(movers, ["15"]) == {**movers, "properties": {  # a plain list: numbers are free
        "exchange": {"type": "string", "enum": ["15"]}, "limit": movers["properties"]["limit"]}}


def test_a_retrieved_step_calls_the_function_retrieval_chose(record):
    """Decoding "retrieved": the first step may call only ``first_function``, with grounded values;
    the later steps are grounded decoding's. The mode and the function come together, and a
    function the tool lacks is refused."""
    from toolalpaca_utils.agents import Episode

    episode = Episode(record, "Find the book Dune for me", None, mode="retrieved", tool_choice="required",
                      thought="documented", first_function="searchBooks")
    (branch,) = episode.first_schema["anyOf"]
    assert branch["properties"]["action"] == {"const": "searchBooks"}
    assert "Dune" in branch["properties"]["action_input"]["properties"]["query"]["enum"]
    grounded = Episode(record, "Find the book Dune for me", None, mode="grounded", tool_choice="required",
                       thought="documented")
    assert episode.schema == grounded.schema
    with pytest.raises(ValueError, match="go together"):
        Episode(record, "x", None, mode="retrieved")
    with pytest.raises(ValueError, match="go together"):
        Episode(record, "x", None, mode="grounded", first_function="getBook")
    with pytest.raises(ValueError, match="has no function lendBook"):
        step_schema(record, functions=["lendBook"])


def test_retrieval_picks_the_function_whose_documentation_line_fits_the_request(record):
    """all-MiniLM-L6-v2 (offline) against each function's documentation line: requests written for
    this made-up tool go to their own function, and a tool's lines are embedded once."""
    from toolalpaca_utils.embedding import SentenceEmbedder
    from toolalpaca_utils.function_retrieval import FunctionRetriever

    calls = []

    class Counting(SentenceEmbedder):
        def encode(self, texts, batch_size=32):
            calls.append(list(texts))
            return super().encode(texts, batch_size)

    retriever = FunctionRetriever(Counting())
    assert retriever.choose(record, "Post my review of book b12: four stars") == "addReview"
    assert retriever.choose(record, "Which books have 'winter' in their title?") == "searchBooks"
    assert retriever.choose(record, "Show me the book with id b12") == "getBook"
    assert [len(c) for c in calls] == [3, 1, 1, 1]  # the three lines once, then one request each
