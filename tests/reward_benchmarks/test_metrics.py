"""Each metric against a hand-computed value on a small table of predictions, and the tie-calibrated accuracy
against the VideoAlign authors' streaming algorithm written out here."""

import math

import numpy as np
import pytest

from unified_reward.reward_benchmarks import metrics as M

# 8 GenAI-Bench items: truth, prediction (None: an unparseable answer)
TRUTH = ["first", "second", "tie", "both_bad", "first", "second", "tie", "both_bad"]
PRED = ["first", "first", "tie", "tie", None, "second", "first", "second"]


def test_genai_bench_accuracies_by_hand():
    # with ties (tau): ties and both-bad are "tie": right at 0 (first), 2 (tie), 3 (tie), 5 (second) -> 4/8
    assert M.accuracy_with_ties(PRED, TRUTH) == 4 / 8
    # without ties (diff): items 0, 1, 4, 5 -> right at 0 and 5 -> 2/4 (the invalid one counts as wrong)
    assert M.accuracy_without_ties(PRED, TRUTH) == 2 / 4
    # 4-way (its inference.py): a predicted tie is right for tie and both-bad votes: 0, 2, 3, 5 -> 4/8
    assert M.genai_four_way_accuracy(PRED, TRUTH) == 4 / 8
    assert M.accuracy(PRED, TRUTH) == 3 / 8  # plain agreement: both_bad is never predicted
    assert M.invalid_rate(PRED) == 1 / 8


def test_groups_and_macro_by_hand():
    groups = ["a", "a", "a", "b", "b", "c", "c", "c"]
    truth = ["first"] * 8
    pred = ["first", "second", "first", "first", "first", "second", "second", None]
    assert M.grouped_accuracy(pred, truth, groups) == {"a": 2 / 3, "b": 1.0, "c": 0.0}
    assert M.macro_accuracy(pred, truth, groups) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_swap_consistency_and_position_bias_by_hand():
    # verdicts in the original order, and those of the swapped showing mapped back
    assert M.swap_consistency(["first", "second", "tie", None], ["first", "first", "tie", None]) == 2 / 4
    # shown order: the judge says "first" 3 of 4 times, the truth is first 1 of 4 times -> bias 0.5
    assert M.position_bias(["first", "first", "first", "second"], ["first", "second", "second", "second"]) == 0.5


def _official_tie_calibrated(h, m):
    """VideoAlign's calc_accuracy_with_ties (Ties Matter, Algorithm 1), transcribed from its calc_accuracy.py."""

    def classify(hi, mi, epsilon, strict):
        tied = abs(mi) < epsilon if strict else abs(mi) <= epsilon
        if hi == 0 and tied:
            return "Thm"
        if hi == 0:
            return "Th"
        if tied:
            return "Tm"
        return "C" if hi * mi > 0 else "D"

    stat = {"C": 0, "D": 0, "Th": 0, "Tm": 0, "Thm": 0}
    for hi, mi in zip(h, m, strict=True):
        stat[classify(hi, mi, -1, False)] += 1
    best, epsilon = float("-inf"), -1
    for hi, mi in sorted(zip(h, m, strict=True), key=lambda x: abs(x[1])):
        stat[classify(hi, mi, epsilon, True)] -= 1
        epsilon = abs(mi)
        stat[classify(hi, mi, epsilon, False)] += 1
        best = max(best, (stat["C"] + stat["Thm"]) / sum(stat.values()))
    return best


def test_tie_calibrated_accuracy_by_hand():
    # margins for A; truths: A, B, tie, tie, A
    margins = [0.9, -0.5, 0.05, -0.1, 0.3]
    truth = ["first", "second", "tie", "tie", "first"]
    # epsilon 0.05: ties predicted for |m|<=0.05 -> right: 0, 1, 2, 4 -> 4/5; epsilon 0.1: 0,1,2,3,4 -> 5/5
    accuracy, epsilon = M.tie_calibrated_accuracy(margins, truth)
    assert (accuracy, epsilon) == (1.0, 0.1)
    # without ties: A items 0 and 4 right, B item 1 right -> 3/3; a zero margin is wrong
    assert M.accuracy_without_ties_from_margins(margins, truth) == 1.0
    assert M.accuracy_without_ties_from_margins([0.0, -1.0], ["first", "second"]) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tie_calibrated_accuracy_equals_the_authors_algorithm(seed):
    rng = np.random.default_rng(seed)
    h = rng.choice([1, -1, 0], size=60, p=[0.4, 0.4, 0.2])
    m = rng.normal(0.3 * h, 0.5)  # distinct |m| (the authors' streaming update differs only on repeated values)
    truth = [{1: "first", -1: "second", 0: "tie"}[x] for x in h]
    no_ties = float(np.mean(h * m > 0))  # the state the authors' sweep starts from but does not score
    wanted = max(_official_tie_calibrated(h, m), no_ties)
    assert M.tie_calibrated_accuracy(m.tolist(), truth)[0] == pytest.approx(wanted)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_videoalign_tie_accuracy_is_its_streaming_algorithm_with_repeated_margins(seed):
    """Pair verdicts give margins of few values (-1, 0, 1 from written verdicts): there the authors' traversal
    scores states between thresholds, which depend on the rows' order."""
    rng = np.random.default_rng(seed)
    h = rng.choice([1, -1, 0], size=40, p=[0.4, 0.4, 0.2])
    m = rng.choice([-1.0, 0.0, 1.0, 0.5], size=40)
    truth = [{1: "first", -1: "second", 0: "tie"}[x] for x in h]
    assert M.videoalign_tie_accuracy(m.tolist(), truth) == pytest.approx(_official_tie_calibrated(h, m))


def test_the_videoalign_number_depends_on_row_order_and_the_order_free_one_does_not():
    assert M.videoalign_tie_accuracy([0.1, 0.1], ["first", "tie"]) == 0.5  # the tie row second: never both right
    assert M.videoalign_tie_accuracy([0.1, 0.1], ["tie", "first"]) == 1.0  # the same rows, swapped
    assert M.tie_calibrated_accuracy([0.1, 0.1], ["first", "tie"])[0] == 0.5
    assert M.tie_calibrated_accuracy([0.1, 0.1], ["tie", "first"])[0] == 0.5
    # written pair verdicts: margins +-1 only; without the no-tie state the sweep has one state, all ties (0.25)
    assert M.tie_calibrated_accuracy([1.0, -1.0, 1.0, 1.0], ["first", "second", "tie", "second"]) == (0.5, -1.0)
    assert M.videoalign_tie_accuracy([1.0, -1.0, 1.0, 1.0], ["first", "second", "tie", "second"]) == 0.25


def test_vl_rewardbench_leaves_unparsed_answers_and_ties_out_of_each_denominator():
    """Its cal.py: group_total counts agree + reject only; macro = mean of the 3 groups; overall = pooled."""
    groups = ["general"] * 4 + ["hallucination"] * 3 + ["reasoning"] * 3
    truth = ["first", "second", "first", "second", "first", "first", "second", "second", "first", "first"]
    pred = ["first", "second", None, "tie", "first", "second", None, "second", "second", "tie"]
    found = M.vl_rewardbench_accuracies(pred, truth, groups, ("general", "hallucination", "reasoning"))
    # general: valid 0, 1 -> 2/2; hallucination: valid 4, 5 -> 1/2; reasoning: valid 7, 8 -> 1/2
    assert found["accuracy/general"] == 1.0 and found["accuracy/hallucination"] == 0.5
    assert found["accuracy/reasoning"] == 0.5
    assert found["macro_accuracy"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert found["accuracy"] == 4 / 6  # pooled: 4 right of 6 valid
    assert M.accuracy(pred, truth) == 4 / 10  # ours: every item in the denominator


def test_mmrb2_counts_each_order_as_a_trial_and_leaves_out_trials_without_a_verdict():
    # its compute_accuracy.py: forward and reverse judgements are separate trials; a falsy judgement is not
    # evaluated; "tie" (truthy, not the chosen answer) is wrong
    trials = [("first", "first"), ("second", "first"), (None, "second"), ("tie", "second"), ("second", "second")]
    assert M.mmrb2_accuracy(trials) == 2 / 4


def test_official_rules_for_unparseable_answers_and_votes():
    guessed = M.random_guess_for_invalid(["first", None, None, "second"], seed=123)
    assert guessed[0] == "first" and guessed[3] == "second" and set(guessed[1:3]) <= {"first", "second"}
    assert guessed == M.random_guess_for_invalid(["first", None, None, "second"], seed=123)  # reproducible
    # its 2_get_accuracy.py: random.seed(123), one random.random() per answer without [[A]] / [[B]] in file
    # order (a tie answer is one), < 0.5 -> A
    import random

    rng = random.Random(123)
    by_hand = ["first" if rng.random() < 0.5 else "second" for _ in range(3)]
    assert M.random_guess_for_invalid(["tie", "second", None, "first", "tie"]) == [
        by_hand[0],
        "second",
        by_hand[1],
        "first",
        by_hand[2],
    ]
    assert M.majority_vote(["first", "first", "second"]) == "first"
    assert M.majority_vote(["first", "second"]) is None  # no verdict has more than half


def test_bootstrap_interval_brackets_the_value_and_is_reproducible():
    right = [1] * 70 + [0] * 30

    def metric(idx):
        return float(np.mean([right[i] for i in idx]))

    low, high = M.bootstrap_interval(metric, len(right), resamples=500, seed=0)
    assert low < 0.7 < high and 0.05 < high - low < 0.25  # ~ +-1.96 * sqrt(.7 * .3 / 100) = +-0.09
    assert (low, high) == M.bootstrap_interval(metric, len(right), resamples=500, seed=0)
    assert all(math.isnan(x) for x in M.bootstrap_interval(metric, 0))


def test_editreward_set_accuracy_by_hand():
    from unified_reward.reward_benchmarks.report import summarize

    # 2pair: e1 right, e2 wrong (a human tie must be judged a tie); 3pair: t1 all 3 right, t2 one of 3 wrong,
    # t3 only 2 of its 3 comparisons in the file (wrong, as its script counts a set that lacks a row)
    rows = [
        ("e1", "2pair", "2pair/e1", "first", "first"),
        ("e2", "2pair", "2pair/e2", "tie", "first"),
        ("t1_0", "3pair", "3pair/t1", "first", "first"),
        ("t1_1", "3pair", "3pair/t1", "second", "second"),
        ("t1_2", "3pair", "3pair/t1", "first", "first"),
        ("t2_0", "3pair", "3pair/t2", "first", "first"),
        ("t2_1", "3pair", "3pair/t2", "second", "first"),
        ("t2_2", "3pair", "3pair/t2", "first", "first"),
        ("t3_0", "3pair", "3pair/t3", "first", "first"),
        ("t3_1", "3pair", "3pair/t3", "first", "first"),
    ]
    table = [
        {
            "id": i,
            "group": g,
            "labels": {"set": s},
            "truth": t,
            "verdict": v,
            "margin": None,
            "presentations": [{"swapped": False, "verdict": v, "shown_verdict": v}],
        }
        for i, g, s, t, v in rows
    ]
    metrics = summarize("editreward_bench", table, [], resamples=10)["metrics"]
    assert metrics["accuracy/2pair"] == 1 / 2
    assert metrics["accuracy/3pair"] == 1 / 3
    assert metrics["accuracy/overall"] == 2 / 5  # e1 and t1 of 5 sets
    assert metrics["ours/pairwise_accuracy"] == 8 / 10
    assert M.set_accuracy(["first", "second"], ["first", "first"], ["a", "b"]) == 1 / 2
