"""The corpus-quality report: measured by code over every accepted instance of a corpus.

What a student can learn from is what it is shown, so notebook 02 reports, per split and for the
whole corpus: where requests, values, responses and answers came from (``*_source``); how many
distinct request phrasings there are and the share of the most used frame; argument values that
are type-valid, that are fragments of their parameter's own description (the junk a weak teacher
writes), that the request says (:func:`toolalpaca_utils.saying.mentioned`: dates, numbers,
case and codes normalised) and that it says in another form than the call's (the normalisation
a student must learn: a currency's name for its code, a prose date for ISO); answers that quote
the observation, that are status lines or hold JSON; duplicate requests within and across splits.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from .agents.responses import STATUS_LINE, answer_problems
from .corpus import load_split, load_tools
from .openapi import function_schemas, record_spec, validate_arguments
from .saying import mentioned

QUALITY_SPLITS = ("train", "eval")


def _norm(text: str) -> str:
    # unlike saying's normaliser, punctuation goes too: a fragment test compares words, while
    # "U.S." or "2023-05-01" must stay whole where a request is read for a value
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", str(text).lower()).split())


def is_description_fragment(value, description: str) -> bool:
    """A string value of three or more words, or of 12+ characters, found inside its parameter's
    own description: the weak teacher's habit of copying the documentation as the value."""
    if not isinstance(value, str):
        return False
    v, d = _norm(value), _norm(description)
    return bool(v) and (len(v.split()) >= 3 or len(v) >= 12) and v in d


def _calls(inst: dict) -> list[tuple[str, dict]]:
    out = []
    for g in inst.get("golden") or []:
        try:
            args = json.loads(g["Action_Input"]) if isinstance(g["Action_Input"], str) else g["Action_Input"]
        except json.JSONDecodeError:
            args = None
        out.append((g["Action"], args if isinstance(args, dict) else {}))
    return out


def instance_checks(inst: dict, record: dict) -> dict:
    """The per-instance facts the report aggregates (counts of values, booleans of answers)."""
    schemas = function_schemas(record_spec(record))
    valid = fragments = said = other_form = n_values = n_said_values = 0
    for name, args in _calls(inst):
        schema = schemas.get(name, {})
        props = schema.get("properties") or {}
        n_values += len(args)
        valid += len(args) if not validate_arguments(schema, args) else 0
        for key, value in args.items():
            fragments += is_description_fragment(value, (props.get(key) or {}).get("description", ""))
            if not isinstance(value, bool):
                n_said_values += 1
                is_said = mentioned(value, inst["instruction"])
                said += is_said
                # said, but not as the call writes it: "British pounds" for GBP, "May 1, 2023" for 2023-05-01
                other_form += is_said and _norm(value) not in _norm(inst["instruction"])
    answer = (inst.get("final") or {}).get("answer", "")
    observations = [s["observation"] for s in inst.get("steps") or [] if s.get("status") and 200 <= s["status"] < 300]
    quotes = bool(observations) and "quotes no value of the observation" not in answer_problems(answer, observations[-1])
    return {"values": n_values, "type_valid": valid, "description_fragments": fragments,
            "said_values": n_said_values, "values_in_request": said, "values_in_another_form": other_form,
            "answer_quotes_observation": quotes,
            "status_line_answer": bool(STATUS_LINE.search(answer)), "json_answer": bool(re.search(r"[{}\[\]]", answer))}


def _share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def corpus_quality(corpus_dir: str | Path) -> dict:
    """The report as one flat dict of counts and percentages (it goes into the stage manifest)."""
    records = load_tools(corpus_dir)
    rows = {s: load_split(corpus_dir, s) for s in QUALITY_SPLITS}
    everything = [r for s in QUALITY_SPLITS for r in rows[s]]
    checks = [instance_checks(r, records[r["tool"]]) for r in everything if r["tool"] in records]
    total = lambda key: sum(c[key] for c in checks)  # noqa: E731
    frames = Counter(r.get("request_frame") or f"teacher:{r['id']}" for r in everything)
    norm = {s: [_norm(r["instruction"]) for r in rows[s]] for s in QUALITY_SPLITS}
    report = {
        "instances": len(everything),
        "distinct_request_phrasings": len(frames),
        "largest_frame_share_pct": _share(max(frames.values(), default=0), len(everything)),
        "type_valid_values_pct": _share(total("type_valid"), total("values")),
        "description_fragment_values": total("description_fragments"),
        "values_in_request_pct": _share(total("values_in_request"), total("said_values")),
        "values_said_in_another_form_pct": _share(total("values_in_another_form"), total("said_values")),
        "answers_quoting_observation_pct": _share(sum(c["answer_quotes_observation"] for c in checks), len(checks)),
        "status_line_answers": sum(c["status_line_answer"] for c in checks),
        "json_answers": sum(c["json_answer"] for c in checks),
        "duplicate_requests_within_splits": sum(len(v) - len(set(v)) for v in norm.values()),
        "duplicate_requests_across_splits": len(set(norm["train"]) & set(norm["eval"])),
    }
    for field in ("request_source", "values_source", "response_source", "answer_source"):
        counts = Counter(r.get(field) or "unrecorded" for r in everything)
        report.update({f"{field}:{k}_pct": _share(v, len(everything)) for k, v in sorted(counts.items())})
    return report


def quality_table(report: dict):
    """The report as a two-column table for the notebook."""
    import pandas as pd

    return pd.DataFrame({"measure": list(report), "value": list(report.values())}).set_index("measure")
