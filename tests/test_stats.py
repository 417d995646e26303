"""Paired tests and intervals of the evaluation tables (toolalpaca_utils.stats), on numbers
worked out by hand, and on rows as the evaluation writes them."""
import pytest

from toolalpaca_utils.evaluation import EvalRun, paired_runs
from toolalpaca_utils.stats import compare_runs, comparison_table, paired_test, share_interval


def test_the_wilson_interval_of_known_shares():
    assert share_interval(0, 30) == (0.0, 11.4)       # 3.84 / (30 + 3.84) = 0.1135
    assert share_interval(15, 30) == (33.2, 66.8)
    assert share_interval(30, 30) == (88.6, 100.0)
    assert share_interval(0, 0) == (0.0, 0.0)


def test_mcnemar_counts_only_the_items_that_tell_two_models_apart():
    base = [True] * 10 + [False] * 20
    tuned = [True] * 10 + [True] * 7 + [False] * 13        # 7 more, none lost
    t = paired_test(base, tuned)
    assert (t["a only"], t["b only"], t["n"]) == (0, 7, 30)
    assert t["p (McNemar exact)"] == pytest.approx(2 * 0.5 ** 7, abs=1e-3) and t["more than noise"]
    assert t["difference (points)"] == 23.3 and t["a %"] == 33.3 and t["b %"] == 56.7
    swapped = paired_test(tuned, base)
    assert swapped["p (McNemar exact)"] == t["p (McNemar exact)"] and swapped["difference (points)"] == -23.3
    # 3 won and 2 lost is noise, whatever the shares say
    mixed = paired_test([True, True, True, False, False] + [False] * 25, [False, False, False, True, True] + [False] * 25)
    assert mixed["p (McNemar exact)"] == 1.0 and not mixed["more than noise"]
    same = paired_test([True, False], [True, False])
    assert same["p (McNemar exact)"] == 1.0 and same["difference (points)"] == 0.0
    with pytest.raises(ValueError, match="same items"):
        paired_test([True], [True, False])


def row(item: str, overall: bool, model: str) -> dict:
    return {"id": item, "model": model, "metrics": {"overall": overall, "api_match": True}}


def test_runs_are_paired_by_item_and_must_hold_the_same_items():
    a = [row("x", True, "base"), row("y", False, "base")]
    b = [row("y", True, "tuned"), row("x", True, "tuned")]       # another order: paired by id
    t = compare_runs(a, b)
    assert (t["a only"], t["b only"]) == (0, 1)
    with pytest.raises(ValueError, match="different items"):
        compare_runs(a, b[:1])                                   # a missing row is never dropped silently
    with pytest.raises(ValueError, match="scored twice"):
        compare_runs(a + a[:1], b)


def test_the_table_pairs_base_and_fine_tuned_per_set_and_decoding():
    runs = [(s, EvalRun(f"{m} · {d}", [row(f"{s}-1", m == "fine-tuned", m), row(f"{s}-2", False, m)]))
            for s in ("real", "simulated") for m in ("base", "fine-tuned") for d in ("free", "constrained")]
    runs.append(("real", EvalRun("fine-tuned · greedy", [row("real-1", True, "fine-tuned")])))  # no base to pair
    pairs = paired_runs(runs)
    assert sorted(pairs) == ["real · constrained: base → fine-tuned", "real · free: base → fine-tuned",
                             "simulated · constrained: base → fine-tuned", "simulated · free: base → fine-tuned"]
    table = comparison_table(pairs, ("overall", "api_match"))
    assert len(table) == 8 and set(table["b only"][table.metric == "overall"]) == {1}
    assert set(table["a 95% interval"][table.metric == "api_match"]) == {"34.2–100.0"}
    empty = comparison_table({})
    assert len(empty) == 0 and "p (McNemar exact)" in empty.columns and len(empty[empty.metric == "overall"]) == 0


def test_every_pair_of_runs_and_the_closing_notes_clause():
    from toolalpaca_utils.stats import noise_sentence, pairwise

    runs = {k: EvalRun(k, [row(f"i{j}", j < hits, k) for j in range(10)]) for k, hits in
            (("base", 0), ("icl", 1), ("tuned", 9))}
    pairs = pairwise(runs)
    assert list(pairs) == ["base → icl", "base → tuned", "icl → tuned"]
    table = comparison_table(pairs)
    assert noise_sentence(table, "overall") == ("of the 3 paired comparisons, base → tuned; icl → tuned differ by "
                                                "more than noise (McNemar, Holm-corrected p < 0.05)")
    assert noise_sentence(comparison_table(pairwise({k: runs[k] for k in ("base", "icl")})), "overall") == (
        "no pair of them differs by more than noise (McNemar, Holm-corrected p ≥ 1.00)")
    assert noise_sentence(comparison_table({}), "overall") == "no pair of models was evaluated"


def test_holm_by_hand_and_a_table_reads_more_than_noise_on_the_corrected_p():
    from toolalpaca_utils.stats import holm

    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → monotone: 0.04 becomes 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == [] and holm([0.5]) == [0.5] and holm([0.6, 0.7]) == [1.0, 1.0]
    # 0 vs 7 discordant items: p = 2·0.5⁷ = 1/64 alone, 2/64 for two, 4/64 for four (within each metric)
    def pair(hits_b):
        return [row(f"i{j}", False, "a") for j in range(10)], [row(f"i{j}", j < hits_b, "b") for j in range(10)]
    two = comparison_table({"x": pair(7), "y": pair(7)}, ("overall", "api_match"))
    overall = two[two.metric == "overall"]
    assert set(overall["p (McNemar exact)"]) == {1 / 64} and set(overall["p (Holm)"]) == {2 / 64}
    assert overall["more than noise"].all()  # corrected with its own metric's tests only (with all four: 4/64)
    assert set(two[two.metric == "api_match"]["p (Holm)"]) == {1.0}
    four = comparison_table({k: pair(7) for k in "wxyz"})
    assert set(four["p (Holm)"]) == {4 / 64} and not four["more than noise"].any()  # uncorrected, all four would pass


def test_each_model_is_paired_with_itself_under_two_decodings():
    from toolalpaca_utils.evaluation import paired_decodings

    runs = [(s, EvalRun(f"{m} · {d}", [row(f"{s}-1", d == "grounded", m)]))
            for s in ("real", "simulated") for m in ("base", "fine-tuned") for d in ("free", "constrained", "grounded")]
    runs.append(("real", EvalRun("tuned · grounded", [row("real-1", True, "tuned")])))  # no constrained run: no pair
    pairs = paired_decodings(runs, "constrained", "grounded")
    assert sorted(pairs) == ["real · base: constrained → grounded", "real · fine-tuned: constrained → grounded",
                             "simulated · base: constrained → grounded", "simulated · fine-tuned: constrained → grounded"]
    table = comparison_table(pairs)
    assert set(table["b only"]) == {1} and set(table["a only"]) == {0}
