"""Ours against a baseline in one run, alternating them (warm-up, then A B A B ... over several repeats) so that a
busy machine slows both alike, and the ratio of their medians as the last line.

    results = alternate({"ours": measure_ours, "baseline": measure_baseline}, repeats=5, warmup=1)
    report(results, "ours", "baseline", unit="samples/s")   # last line: ratio=<median ours / median baseline>
"""

from __future__ import annotations

import statistics
from collections.abc import Callable


def alternate(sides: dict[str, Callable[[], float]], *, repeats: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Each side's measurement (a rate: higher is better) `repeats` times, the sides taken in turn each round,
    after `warmup` rounds that are not kept."""
    if repeats < 5:
        raise ValueError(f"at least 5 repeats, got {repeats}: fewer cannot show the spread of a busy machine")
    results: dict[str, list[float]] = {name: [] for name in sides}
    for round_index in range(warmup + repeats):
        for name, measure in sides.items():
            value = measure()
            if round_index >= warmup:
                results[name].append(value)
    return results


def report(results: dict[str, list[float]], ours: str, baseline: str, *, unit: str) -> float:
    """Prints each side's median and spread (min - max over the repeats), then `ratio=<ours/baseline>` of the
    medians; returns the ratio."""
    for name, values in results.items():
        print(
            f"{name:>24s}: median {statistics.median(values):10.2f} {unit}, spread {min(values):.2f} - "
            f"{max(values):.2f} over {len(values)} repeats"
        )
    ratio = statistics.median(results[ours]) / statistics.median(results[baseline])
    print(f"ratio={ratio:.3f}")
    return ratio
