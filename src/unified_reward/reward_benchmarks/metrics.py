"""Benchmark metrics as pure functions over per-item predictions, each defined as its benchmark's authors compute
it (README, "Evaluating judges"), plus what none of them report: swap consistency, position bias, invalid rate and
bootstrap intervals.

Verdicts are `first` / `second` / `tie` in the benchmark's own candidate order (A / left / response 0 first);
`None` is an invalid (unparseable) answer. Truths add `both_bad` (GenAI-Bench's `bothbad_vote`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from unified_reward.data.schema import PAIR_LABELS

NON_TIES = ("first", "second")


def accuracy(predicted: Sequence[str | None], truth: Sequence[str]) -> float:
    """Exact agreement; an invalid answer is wrong."""
    return float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])) if truth else float("nan")


def grouped_accuracy(predicted, truth, groups: Sequence[str]) -> dict[str, float]:
    """Accuracy within each group."""
    rows: dict[str, list[bool]] = defaultdict(list)
    for p, t, g in zip(predicted, truth, groups, strict=True):
        rows[g].append(p == t)
    return {g: float(np.mean(v)) for g, v in sorted(rows.items())}


def macro_accuracy(predicted, truth, groups) -> float:
    """The mean of the groups' accuracies."""
    return float(np.mean(list(grouped_accuracy(predicted, truth, groups).values())))


def valid_accuracy(predicted: Sequence[str | None], truth: Sequence[str]) -> float:
    """VL-RewardBench's `cal.py`: right answers over the answers that name a winner; an unparsed answer, and a tie
    (which its answer pattern does not match), is left out of the denominator."""
    kept = [(p, t) for p, t in zip(predicted, truth, strict=True) if p in NON_TIES]
    return accuracy([p for p, _ in kept], [t for _, t in kept])


def vl_rewardbench_accuracies(predicted, truth, groups, names: Sequence[str]) -> dict[str, float]:
    """Its `cal.py`: each group's `valid_accuracy`; the macro average, the mean over the `names` groups; the
    overall accuracy, right answers over valid answers of all groups pooled."""
    found = {}
    for name in names:
        kept = [(p, t) for p, t, g in zip(predicted, truth, groups, strict=True) if g == name]
        found[f"accuracy/{name}"] = valid_accuracy([p for p, _ in kept], [t for _, t in kept])
    found["macro_accuracy"] = float(np.mean([found[f"accuracy/{name}"] for name in names]))
    found["accuracy"] = valid_accuracy(predicted, truth)
    return found


def accuracy_with_ties(predicted, truth) -> float:
    """GenAI-Bench "w/ ties" (tau): every item, a tie or both-bad vote is a tie that must be predicted as one."""
    return accuracy(predicted, ["tie" if t in ("tie", "both_bad") else t for t in truth])


def accuracy_without_ties(predicted, truth) -> float:
    """ "w/o ties" (diff): only items whose truth names a winner; a predicted tie or an invalid answer is wrong."""
    kept = [(p, t) for p, t in zip(predicted, truth, strict=True) if t in NON_TIES]
    return accuracy([p for p, _ in kept], [t for _, t in kept])


def genai_four_way_accuracy(predicted, truth) -> float:
    """GenAI-Bench's own accuracy: a winner must match the vote; a predicted tie (`[[A=B]]`) is right for a tie
    vote and for a both-bad vote, as its `inference.py` counts it."""
    right = [(p == t) if t in NON_TIES else p == "tie" for p, t in zip(predicted, truth, strict=True)]
    return float(np.mean(right)) if right else float("nan")


def set_accuracy(predicted, truth, sets: Sequence[str], complete: Callable[[str], bool] = lambda _: True) -> float:
    """EditReward-Bench's group accuracy (its inference_3pair / 4pair scripts): a set of K edits is right when each
    of its comparisons is right, and counts once; a set that `complete` says lacks some of its comparisons is
    wrong. Over items drawn with replacement (the bootstrap), a set is right when every drawn comparison of it is."""
    right: dict[str, bool] = {}
    for p, t, s in zip(predicted, truth, sets, strict=True):
        right[s] = right.get(s, complete(s)) and p == t
    return float(np.mean(list(right.values()))) if right else float("nan")


def tie_calibrated_accuracy(margins: Sequence[float], truth: Sequence[str]) -> tuple[float, float]:
    """VideoGen-RewardBench "w/ ties" (Ties Matter, arXiv 2305.14324, Algorithm 1): a margin |m| <= epsilon is a
    predicted tie; the best three-class accuracy over the states no row order changes, the thresholds epsilon in
    {|m_i|} and no predicted tie at all (epsilon = -1, where VideoAlign's traversal starts: with pair verdicts the
    margins take few values, and without that state the sweep may score one state only, every item a tie), and
    that threshold.

    `margins`: preference for the first candidate (score A - score B, or P(A) - P(B)); NaN (no reading) never
    counts as right."""
    m = np.asarray(margins, dtype=float)
    h = np.array([{"first": 1, "second": -1}.get(t, 0) for t in truth])
    if not len(m):
        return float("nan"), 0.0
    best, best_epsilon = float("-inf"), -1.0
    for epsilon in [-1.0, *sorted(set(np.abs(m[~np.isnan(m)]).tolist()))]:
        model_tie = np.abs(m) <= epsilon
        right = np.where(h == 0, model_tie, ~model_tie & (h * m > 0))
        score = float(np.mean(right))
        if score > best:
            best, best_epsilon = score, epsilon
    return best, best_epsilon


def accuracy_without_ties_from_margins(margins, truth) -> float:
    """VideoGen-RewardBench "w/o ties": items with a winner; a margin of exactly 0 (or NaN) is wrong."""
    kept = [(m, t) for m, t in zip(margins, truth, strict=True) if t in NON_TIES]
    right = [(m > 0) if t == "first" else (m < 0) for m, t in kept]
    return float(np.mean(right)) if right else float("nan")


def swap_consistency(in_order: Sequence[str | None], swapped_back: Sequence[str | None]) -> float:
    """Share of items whose verdict survives swapping the candidates (`swapped_back`: the verdict of the swapped
    presentation mapped back to the original order); an invalid answer on either side is inconsistent."""
    same = [a is not None and a == b for a, b in zip(in_order, swapped_back, strict=True)]
    return float(np.mean(same)) if same else float("nan")


def position_bias(shown_verdicts: Sequence[str | None], shown_truths: Sequence[str]) -> float:
    """Share of "first" verdicts minus the truth's share of "first", both in the order the candidates were shown
    (0: no lean; > 0: prefers whatever comes first)."""
    if not shown_truths:
        return float("nan")
    return float(np.mean([v == "first" for v in shown_verdicts]) - np.mean([t == "first" for t in shown_truths]))


def invalid_rate(predicted: Sequence[str | None]) -> float:
    return float(np.mean([p is None for p in predicted])) if predicted else float("nan")


def bootstrap_interval(
    metric: Callable[[list[int]], float], count: int, *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile interval of `metric(indices)` over `resamples` resamplings of the `count` items."""
    if count == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [metric(rng.integers(0, count, size=count).tolist()) for _ in range(resamples)]
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def random_guess_for_invalid(predicted: Sequence[str | None], seed: int = 123) -> list[str]:
    """Multimodal RewardBench's `2_get_accuracy.py`: an answer that names no winner (unparsed, or a tie: it holds
    neither `[[A]]` nor `[[B]]`) becomes a coin flip, one `random.random()` of `random.seed(123)` per such answer in
    file order (`< 0.5`: A)."""
    rng = random.Random(seed)
    return [p if p in NON_TIES else ("first" if rng.random() < 0.5 else "second") for p in predicted]


def mmrb2_accuracy(trials: Sequence[tuple[str | None, str]]) -> float:
    """MMRB2's `compute_accuracy.py`: every order an item was shown in is a trial of its own (its verdict mapped back
    to the released order); a trial without a verdict is left out of the denominator, any other verdict that is
    not the chosen answer (a tie too) is wrong."""
    judged = [(v, t) for v, t in trials if v is not None]
    return accuracy([v for v, _ in judged], [t for _, t in judged])


def videoalign_tie_accuracy(margins: Sequence[float], truth: Sequence[str]) -> float:
    """VideoGen-RewardBench "w/ ties" as VideoAlign's `calc_accuracy.py` computes it: pairs sorted by |margin|
    (a stable sort: rows of equal |margin| stay in file order), then one pair at a time moved into the predicted
    ties, the accuracy taken after each move, the best kept. Between rows of equal |margin| the states it scores
    match no threshold, so the number depends on the rows' order (`tie_calibrated_accuracy` scores only the states
    that do not); a margin that is NaN is never a tie and never right."""
    m = np.asarray(margins, dtype=float)
    h = np.array([{"first": 1, "second": -1}.get(t, 0) for t in truth])
    tie = np.zeros(len(m), dtype=bool)
    best = float("-inf")
    for index in sorted(range(len(m)), key=lambda i: abs(m[i]) if not np.isnan(m[i]) else float("inf")):
        if np.isnan(m[index]):
            break
        tie[index] = True
        right = np.where(h == 0, tie, ~tie & (h * m > 0))
        best = max(best, float(np.mean(right)))
    return best if best > float("-inf") else float("nan")


def majority_vote(votes: Sequence[str | None]) -> str | None:
    """More than half of the votes (VL-RewardBench's k random-order samples); None when no verdict has that."""
    for verdict in PAIR_LABELS:
        if sum(v == verdict for v in votes) > len(votes) / 2:
            return verdict
    return None
