"""The Performance page: benchmark summaries in, table + plot out; missing results never break it."""
import json

from toolalpaca_utils import performance


def test_summary_ratio_and_target():
    s = performance.benchmark_summary(title="t", measure="tokens/s", baseline="ref", baseline_value=10.0,
                                      ours="ours", ours_value=25.0, target_ratio=2.0)
    assert s["ratio"] == 2.5 and s["meets_target"] is True
    s = performance.benchmark_summary(title="t", measure="tokens/s", baseline="ref", baseline_value=10.0,
                                      ours="ours", ours_value=15.0, target_ratio=2.0)
    assert s["ratio"] == 1.5 and s["meets_target"] is False


def test_page_from_results(tmp_path):
    results, executed = tmp_path / "results", tmp_path / "executed"
    results.mkdir()
    summary = performance.benchmark_summary(title="training throughput", measure="non-pad tokens/s",
                                            baseline="pad to 1024", baseline_value=36.2, ours="dynamic",
                                            ours_value=167.7, target_ratio=2.0, note="8 instances")
    (results / "training_throughput.json").write_text(json.dumps({"summary": summary}))
    (results / "eval_throughput.json").write_text("{not json")  # a broken file is "not run", not a crash
    page = performance.write_page(executed, ["| notebook |", "|---|", "| 01_toolset |"], results_dir=results)
    text = page.read_text()
    assert "**4.63×**" in text and "≥ 2.0× (met)" in text and "8 instances" in text
    assert "`eval_throughput` | not run" in text and "`simulation_yield` | not run" in text
    assert "| 01_toolset |" in text
    assert "![measured ratios" in text and (executed / "performance.png").stat().st_size > 1000


def test_page_without_any_results(tmp_path):
    page = performance.write_page(tmp_path / "executed", [], results_dir=tmp_path / "none")
    text = page.read_text()
    assert text.count("not run") == len(performance.BENCHMARKS) and "![" not in text
    assert not (tmp_path / "executed" / "performance.png").exists()


def test_the_levers_table_is_the_benchmarks_rows_averaged_over_seeds(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    page = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results)
    assert "## Corpus levers" in page.read_text() and "Not run: `python benchmarks/corpus_levers.py`" in page.read_text()
    row = {"set": "real", "decoding": "constrained", "tool_choice": "required", "condition": "all levers",
           "well_formed": 90.0, "api_match": 30.0, "argument_match": 10.0, "overall": 5.0}
    rows = [row, {**row, "seed": 1, "overall": 15.0}, {**row, "condition": "teacher's tools only", "overall": 2.0}]
    (results / "corpus_levers.json").write_text(json.dumps(rows))
    text = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results).read_text()
    assert "| real | constrained | required | all levers | 2 | 90.0 | 30.0 | 10.0 | 10.0 |" in text
    assert "| real | constrained | required | teacher's tools only | 1 | 90.0 | 30.0 | 10.0 | 2.0 |" in text
    assert text.index("## Corpus levers") < text.index("## Notebook run times")
    assert "McNemar" not in text                                   # no paired file: no paired table
    paired = {"set": "real", "tool_choice": "required", "comparison": "all levers → teacher's tools only", "seeds": 2,
              "metric": "overall", "n": 60, "a %": 13.3, "b %": 16.7, "a only": 1, "b only": 3, "p (McNemar exact)": 0.625,
              "p (Holm)": 1.0}
    (results / "corpus_levers_paired.json").write_text(json.dumps([paired]))
    text = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results).read_text()
    assert "| real | required | all levers → teacher's tools only | 2 | overall | 60 | 13.3 | 16.7 | 1 | 3 | 0.625 | 1.0 |" in text
    assert "What each condition does to its corpus" not in text    # rows without the corpus figures
    # with them: one corpus per condition and seed (its two sets' rows count once), averaged over seeds
    quality = {"seed": 0, "corpus status_line_answers": 0, "corpus answers_quoting_observation_pct": 97.0}
    rows = [{**row, **quality}, {**row, **quality, "set": "simulated"},
            {**row, **quality, "seed": 1, "corpus answers_quoting_observation_pct": 95.0},
            {**row, "condition": "answers unchecked", "seed": 0, "corpus status_line_answers": 59,
             "corpus answers_quoting_observation_pct": 11.9}]
    (results / "corpus_levers.json").write_text(json.dumps(rows))
    text = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results).read_text()
    assert "| condition | seeds | status_line_answers | answers_quoting_observation_pct |" in text
    assert "| all levers | 2 | 0.0 | 96.0 |" in text and "| answers unchecked | 1 | 59.0 | 11.9 |" in text


def test_the_thought_table_is_the_benchmarks_rows(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    text = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results).read_text()
    assert "## The thought before a call" in text and "Not run: `python benchmarks/thought_lever.py`" in text
    rows = [{"variant": v, "set": "simulated", "decoding": "grounded", "well_formed": 90.5, "api_match": a,
             "argument_match": 28.6, "overall": o, "minutes": 22.9} for v, a, o in (("summary", 66.7, 42.9),
                                                                                  ("names", 47.6, 19.0))]
    (results / "thought_lever.json").write_text(json.dumps(rows))
    text = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results).read_text()
    assert "| simulated | grounded | thought | names | free | 90.5 | 47.6 | 28.6 | 19.0 |" in text
    assert text.index("| simulated | grounded | thought | names |") < text.index("| simulated | grounded | thought | summary |")
    rows.append({**rows[0], "decoded_thought": "documented", "api_match": 71.4, "run": "thought_book"})
    (results / "thought_lever.json").write_text(json.dumps(rows))
    text = performance.write_page(tmp_path / "executed", ["| notebook |"], results_dir=results).read_text()
    assert "| simulated | grounded | thought_book | summary | documented | 90.5 | 71.4 | 28.6 | 42.9 |" in text
    (results / "thought_lever.json").write_text('[{"variant": "names"}]')  # a row without its figures
    text = performance.write_page(tmp_path / "executed", [], results_dir=results).read_text()
    assert "Not run: `python benchmarks/thought_lever.py`" in text


def test_the_choice_table_is_the_benchmarks_table(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    text = performance.write_page(tmp_path / "executed", [], results_dir=results).read_text()
    assert "## Which sibling the student picks" in text and "Not run: `python benchmarks/function_choice.py`" in text
    table = [{"adapter": "2-epochs", "set": "held-out", "requests": 39, "greedy": 59.0, "sum": 61.5,
              "per token": 43.6, "per character": 51.3}]
    (results / "function_choice.json").write_text(json.dumps({"table": table, "rows": {}}))
    text = performance.write_page(tmp_path / "executed", [], results_dir=results).read_text()
    assert "| 2-epochs | held-out | 39 | 59.0 | 61.5 | 43.6 | 51.3 | – |" in text  # no retrieval column yet
    (results / "function_choice.json").write_text(json.dumps({"table": [{"adapter": "x"}]}))  # a row without figures
    assert "Not run: `python benchmarks/function_choice.py`" in performance.write_page(
        tmp_path / "executed", [], results_dir=results).read_text()


def test_the_grounding_table_is_the_benchmarks_table(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    text = performance.write_page(tmp_path / "executed", [], results_dir=results).read_text()
    assert "## Typed grounding" in text and "Not run: `python benchmarks/typed_grounding.py`" in text
    row = {"set": "held-out", "metric": "argument_match", "n": 49, "a %": 53.1, "b %": 65.3, "a only": 0,
           "b only": 6, "p (McNemar exact)": 0.03125, "more than noise": True}
    (results / "typed_grounding.json").write_text(json.dumps({"table": [row]}))
    text = performance.write_page(tmp_path / "executed", [], results_dir=results).read_text()
    assert "| held-out | argument_match | 49 | 53.1 | 65.3 | 0 | 6 | 0.031 |" in text
    (results / "typed_grounding.json").write_text(json.dumps({"table": [{"set": "x"}]}))  # a row without figures
    assert "Not run: `python benchmarks/typed_grounding.py`" in performance.write_page(
        tmp_path / "executed", [], results_dir=results).read_text()
