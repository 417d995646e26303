"""Stage 5: subset construction (equal counts, requested tools, no evaluation tool) and two
points trained and evaluated end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolalpaca_utils.diversity import diversity_subsets

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "corpus_small"


def fake_corpus(counts: dict[str, int]) -> list[dict]:
    return [{"id": f"{t}-{i}", "tool": t} for t, n in counts.items() for i in range(n)]


def test_equal_counts_and_requested_tools():
    corpus = fake_corpus({"A": 10, "B": 3, "C": 6, "D": 8, "E": 2, "F": 9})
    subsets, count = diversity_subsets(corpus, [1, 2, 4, 6], n_instances=12, seed=3)
    assert [s.n_tools for s in subsets] == [1, 2, 4, 6]
    assert all(len(s.instances) == count for s in subsets)
    for s in subsets:
        assert {i["tool"] for i in s.instances} <= set(s.tools) and len(s.tools) == s.n_tools
        assert len({i["id"] for i in s.instances}) == len(s.instances)  # no instance twice
        if s.n_tools > 1:  # every chosen tool is used when the budget allows
            assert len({i["tool"] for i in s.instances}) == min(s.n_tools, count)
    # the smallest subset caps the count: one tool holds at most its own instances
    assert count == min(12, len([i for i in corpus if i["tool"] == subsets[0].tools[0]]))
    # nested tools and reproducible draws
    assert set(subsets[1].tools) <= set(subsets[2].tools) <= set(subsets[3].tools)
    again, _ = diversity_subsets(corpus, [1, 2, 4, 6], n_instances=12, seed=3)
    assert [[i["id"] for i in s.instances] for s in again] == [[i["id"] for i in s.instances] for s in subsets]


def test_a_budget_the_smallest_point_cannot_hold_is_capped_with_a_visible_warning():
    from toolalpaca_utils.diversity import DiversityCapWarning

    corpus = fake_corpus({"A": 5, "B": 5, "C": 5})
    with pytest.warns(DiversityCapWarning) as caught:
        subsets, count = diversity_subsets(corpus, [1, 3], n_instances=2000, seed=0)
    assert count == 5 and all(len(s.instances) == 5 for s in subsets)
    msg = str(caught[0].message)
    assert "n_instances=2000" in msg and "1 tool(s), 5 training instances" in msg and "every point trains on 5" in msg
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # a budget that fits, or 0: no warning
        assert diversity_subsets(corpus, [1, 3], n_instances=5, seed=0)[1] == 5
        assert diversity_subsets(corpus, [1, 3], seed=0)[1] == 5


def test_evaluation_tools_never_enter_a_subset():
    corpus = fake_corpus({"A": 4, "B": 4})
    with pytest.raises(ValueError, match="evaluation tool 'B'"):
        diversity_subsets(corpus, [1, 2], seed=0, eval_tools=["B"])
    with pytest.raises(ValueError, match="n_tools must lie in 1..2"):
        diversity_subsets(corpus, [3], seed=0)


@pytest.mark.slow
@pytest.mark.e2e
def test_two_points_end_to_end(realtools_url, tmp_path):
    from toolalpaca_utils.agents.episode import call_thought
    from toolalpaca_utils.corpus import load_split, load_tools
    from toolalpaca_utils.diversity import run_point
    from toolalpaca_utils.evaluation import items_from_real
    from toolalpaca_utils.llm import Student
    from toolalpaca_utils.training import TrainConfig

    records = load_tools(FIXTURE)
    train = load_split(FIXTURE, "train")
    subsets, count = diversity_subsets(train, [1, 2], seed=0)
    items, real_records = items_from_real(realtools_url)
    eval_sets = {"real": (items[:2], real_records)}
    cfg = TrainConfig(max_steps=2, per_device_batch_size=2, grad_accum=1, max_length=768, eval_fraction=0.0)
    # the second point decodes as the cpu profile does: grounded, a call first, documented thoughts
    decodings = [None, {"mode": "grounded", "tool_choice": "required", "thought": "documented"}]
    rows = []
    for s, decoding in zip(subsets, decodings):
        rows += run_point(s, records, eval_sets, out_dir=tmp_path / f"k{s.n_tools}", teacher=None,
                          train_config=cfg, max_steps_eval=1, student=Student(work_dir=tmp_path / "served"),
                          decoding=decoding)
    assert [r["n_tools"] for r in rows] == [1, 2]
    assert all(r["n"] == 2 and r["n_instances"] == count and r["train_steps"] == 2 for r in rows)
    assert all(0 <= r["overall"] <= 100 for r in rows)
    # whatever the student chose, its first step is a call whose thought is that function's documentation line
    graded = [json.loads(line) for line in (tmp_path / "k2" / "eval-real.jsonl").read_text().splitlines()]
    calls = [(row["tool"], row["steps"][0]) for row in graded if row["steps"] and row["steps"][0]["action"]]
    assert len(graded) == 2 and calls
    assert all(step["thought"] == call_thought(real_records[tool], step["action"]) for tool, step in calls)
