"""A benchmark's results from its predictions: the numbers its authors define, the checks none of them report
(swap consistency, position bias, invalid rate), a bootstrap 95% interval for every accuracy, and every skipped
item with its reason."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from unified_reward.reward_benchmarks import metrics as M
from unified_reward.reward_benchmarks.items import Skipped

SHOWN_TRUTH = {False: {"first": "first", "second": "second"}, True: {"first": "second", "second": "first"}}


VL_REWARDBENCH_GROUPS = ("general", "hallucination", "reasoning")


def _per_benchmark(benchmark: str, rows: list[dict[str, Any]]) -> dict[str, Callable[[Sequence[int]], float]]:
    """name -> metric over the given item indices (so that each can be bootstrapped). Each benchmark's numbers
    under its authors' names as their scripts compute them; a number of ours is named `ours/...`. `rows` are in
    the benchmark's file order (Multimodal RewardBench's coin flips are drawn in it)."""
    verdict = [r["verdict"] for r in rows]
    truth = [r["truth"] for r in rows]
    group = [r["group"] for r in rows]
    margin = [r["margin"] if r["margin"] is not None else math.nan for r in rows]

    def on(fn, *columns):
        return lambda idx: fn(*[[column[i] for i in idx] for column in columns])

    found: dict[str, Callable] = {"accuracy": on(M.accuracy, verdict, truth)}
    if benchmark == "vl_rewardbench":
        found = {}
        for name in ("accuracy", "macro_accuracy", *(f"accuracy/{g}" for g in VL_REWARDBENCH_GROUPS)):
            found[name] = on(
                lambda v, t, g, n=name: M.vl_rewardbench_accuracies(v, t, g, VL_REWARDBENCH_GROUPS)[n],
                verdict,
                truth,
                group,
            )
        found["ours/accuracy_all_items"] = on(M.accuracy, verdict, truth)  # an unparsed answer or a tie is wrong
    elif benchmark.startswith("genai_bench"):
        found = {
            "accuracy_with_ties": on(M.accuracy_with_ties, verdict, truth),
            "accuracy_without_ties": on(M.accuracy_without_ties, verdict, truth),
            "accuracy_4way": on(M.genai_four_way_accuracy, verdict, truth),
        }
        if benchmark == "genai_bench_edit":  # EditReward's number (65.72): tie-calibrated, both-bad votes as ties
            calibrated = ["tie" if t == "both_bad" else t for t in truth]
            found["accuracy_with_ties_calibrated"] = on(
                lambda m, t: M.tie_calibrated_accuracy(m, t)[0], margin, calibrated
            )
    elif benchmark == "editreward_bench":
        sets = [r.get("labels", {}).get("set", r["id"]) for r in rows]
        counts = Counter(sets)

        def complete(name: str) -> bool:  # a set of K edits has K(K-1)/2 comparisons
            k = int(name.split("pair", 1)[0])
            return counts[name] == k * (k - 1) // 2

        found = {}
        for subset in ("2pair", "3pair", "4pair"):
            if subset in group:  # 2pair: exact agreement, a human tie must be judged a tie
                found[f"accuracy/{subset}"] = on(
                    lambda v, t, s, g, n=subset: M.set_accuracy(*_within(g, n, v, t, s), complete),
                    verdict,
                    truth,
                    sets,
                    group,
                )
        found["accuracy/overall"] = on(lambda v, t, s: M.set_accuracy(v, t, s, complete), verdict, truth, sets)
        found["ours/pairwise_accuracy"] = on(M.accuracy, verdict, truth)
    elif benchmark == "videogen_rewardbench":
        # VQ / MQ / TA are not reported: they need a judgment per dimension, and the judge gives one overall
        found = {
            "accuracy_with_ties": on(lambda m, t: M.tie_calibrated_accuracy(m, t)[0], margin, truth),
            "accuracy_without_ties": on(M.accuracy_without_ties_from_margins, margin, truth),
            # VideoAlign's calc_accuracy.py on the rows in file order: between rows of equal margin it scores
            # states no threshold gives, so it can differ from the number above (metrics.videoalign_tie_accuracy)
            "accuracy_with_ties_videoalign_code": on(M.videoalign_tie_accuracy, margin, truth),
        }
    elif benchmark == "multimodal_rewardbench":
        guessed = M.random_guess_for_invalid(verdict)  # once, over the whole file in its order, as its script does
        found = {"accuracy": on(M.accuracy, guessed, truth)}
        for name in sorted(set(group)):
            found[f"accuracy/{name}"] = on(
                lambda v, t, g, n=name: M.accuracy(*_where(v, t, g, n)), guessed, truth, group
            )
        found["ours/accuracy_no_coin_flips"] = on(M.accuracy, verdict, truth)  # an unparsed answer or a tie is wrong
    elif benchmark == "mmrb2":
        trials = [[(p["verdict"], r["truth"]) for p in r["presentations"]] for r in rows]

        def pooled(t, g, name=None):
            return M.mmrb2_accuracy([trial for ts, gs in zip(t, g, strict=True) if name in (None, gs) for trial in ts])

        found = {"accuracy": on(pooled, trials, group)}  # its "Overall": the trials of every subset pooled
        for name in sorted(set(group)):
            found[f"accuracy/{name}"] = on(lambda t, g, n=name: pooled(t, g, n), trials, group)
    elif benchmark == "synthetic":
        for name in sorted(set(group)):
            found[f"accuracy/{name}"] = on(
                lambda v, t, g, n=name: M.accuracy(*_where(v, t, g, n)), verdict, truth, group
            )
        found["accuracy/mean"] = on(lambda v, t, g: _mean_over_groups(v, t, g), verdict, truth, group)
        # generation streams apart by the look of their candidates: clean renders, or media that look generated
        looks = [r.get("labels", {}).get("look") for r in rows]
        look = [f"{g}/{x}" if x else "" for g, x in zip(group, looks, strict=True)]
        for name in sorted(set(look) - {""}):
            found[f"accuracy/{name}"] = on(
                lambda v, t, g, n=name: M.accuracy(*_where(v, t, g, n)), verdict, truth, look
            )
    elif benchmark == "synthetic_generated":
        # the judge's agreement with the oracle on pairs the oracle does not tie (the target), and on all
        for name in sorted(set(group)):
            found[f"accuracy_without_ties/{name}"] = on(
                lambda v, t, g, n=name: M.accuracy_without_ties(*_where(v, t, g, n)), verdict, truth, group
            )
            found[f"accuracy_with_ties/{name}"] = on(
                lambda v, t, g, n=name: M.accuracy_with_ties(*_where(v, t, g, n)), verdict, truth, group
            )
            found[f"ours/oracle_tie_share/{name}"] = on(lambda t, g, n=name: _share_of_ties(t, g, n), truth, group)
    return found


def _within(groups, name, *columns) -> list[list]:
    """Each column's values on the rows of group `name`."""
    rows = [i for i, g in enumerate(groups) if g == name]
    return [[column[i] for i in rows] for column in columns]


def _where(verdicts, truths, groups, name):
    return _within(groups, name, verdicts, truths)


def _share_of_ties(truths, groups, name) -> float:
    within = [t for t, g in zip(truths, groups, strict=True) if g == name]
    return sum(t == "tie" for t in within) / len(within) if within else math.nan


def _mean_over_groups(verdicts, truths, groups) -> float:
    values = [M.accuracy(*_where(verdicts, truths, groups, g)) for g in sorted(set(groups))]
    return sum(values) / len(values) if values else math.nan


def _checks(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Invalid answers, position bias over every presentation, and swap consistency where items were shown
    both ways."""
    shown = [
        (p["shown_verdict"], SHOWN_TRUTH[p["swapped"]].get(r["truth"], "tie")) for r in rows for p in r["presentations"]
    ]
    checks = {
        "invalid_rate": M.invalid_rate([v for v, _ in shown]),
        "position_bias": M.position_bias([v for v, _ in shown], [t for _, t in shown]),
    }
    pairs = [
        (
            next(p["verdict"] for p in r["presentations"] if not p["swapped"]),
            next(p["verdict"] for p in r["presentations"] if p["swapped"]),
        )
        for r in rows
        if {p["swapped"] for p in r["presentations"]} == {False, True}
    ]
    if pairs:
        checks["swap_consistency"] = M.swap_consistency([a for a, _ in pairs], [b for _, b in pairs])
    return checks


def summarize(
    benchmark: str, rows: list[dict[str, Any]], read_skipped: list[Skipped], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    judged = [r for r in rows if "skipped" not in r]
    skipped = [{"id": s.id, "reason": s.reason, "detail": s.detail} for s in read_skipped]
    skipped += [{"id": r["id"], "reason": r["skipped"], "detail": r.get("detail", "")} for r in rows if "skipped" in r]
    values, intervals = {}, {}
    for name, metric in _per_benchmark(benchmark, judged).items():
        everything = list(range(len(judged)))
        values[name] = metric(everything)
        intervals[name] = M.bootstrap_interval(metric, len(judged), resamples=resamples, seed=seed)
    return {
        "benchmark": benchmark,
        "items": len(judged) + len(skipped),
        "judged": len(judged),
        "skipped": dict(Counter(s["reason"] for s in skipped)),
        "metrics": values,
        "intervals_95": intervals,
        "checks": _checks(judged),
        "skipped_items": skipped,
    }


def markdown_table(results: dict[str, Any], protocol: dict[str, Any]) -> str:
    lines = [
        f"# {results['benchmark']}: {results['judged']} items judged, {results['items'] - results['judged']} skipped "
        f"{results['skipped'] or ''}",
        "",
        "protocol: " + ", ".join(f"{k}={v}" for k, v in protocol.items()),
        "",
        "| metric | value | 95% interval |",
        "|---|---|---|",
    ]
    for name, value in results["metrics"].items():
        low, high = results["intervals_95"][name]
        lines.append(f"| {name} | {value:.4f} | {low:.4f} - {high:.4f} |")
    for name, value in results["checks"].items():
        lines.append(f"| {name} | {value:.4f} | |")
    return "\n".join(lines) + "\n"
