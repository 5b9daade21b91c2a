"""Tables and plots over seeds for the experiments' collect scripts: mean, spread and every seed's value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def sample_std(values: Sequence[float]) -> float:
    """The spread over seeds as the sample standard deviation (n - 1 in the denominator): with 3 seeds numpy's
    default (n) understates it by a factor of 1.22, and every standard error quoted from it with it."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def mean_spread(values: Sequence[float], digits: int = 3) -> str:
    """`mean ± sample std (n=k)` of a metric over seeds; `mean (n=1)` for one run, `-` when there is none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n=1)"
    return f"{np.mean(values):.{digits}f} ± {sample_std(values):.{digits}f} (n={len(values)})"


def grouped_bars(
    values: Mapping[tuple[str, str], Sequence[float]],
    groups: Sequence[str],
    settings: Sequence[str],
    path: Path,
    *,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    reference_line: float | None = None,
) -> None:
    """One bar per (group, setting): the mean over seeds with its sample std as error bar, each seed a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(groups))
    width = 0.72 / len(settings)
    for k, setting in enumerate(settings):
        offset = (k - (len(settings) - 1) / 2) * width
        runs = [list(values.get((group, setting), [])) for group in groups]
        means = [np.mean(v) if v else np.nan for v in runs]
        spreads = [sample_std(v) if len(v) > 1 else 0.0 for v in runs]
        axis.bar(x + offset, means, width=width, yerr=spreads, capsize=3, label=setting)
        for i, v in enumerate(runs):
            axis.scatter([x[i] + offset] * len(v), v, color="black", s=8, zorder=3)
    axis.set_xticks(x, [g.replace("_", "\n") for g in groups])
    axis.set_ylabel(ylabel)
    if ylim is not None:
        axis.set_ylim(*ylim)
    if reference_line is not None:
        axis.axhline(reference_line, color="grey", linewidth=0.8, linestyle=":")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
