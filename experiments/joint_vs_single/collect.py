"""Collect the joint-vs-single ablation into tables, a transfer heat map and a bar plot.

    bash experiments/joint_vs_single/run.sh                      # the runs, then this script
    python experiments/joint_vs_single/collect.py logs/joint_vs_single --out experiments/joint_vs_single

Each run folder holds `.hydra/config.yaml` (the arm is its `task_name`, its budget `budget.name`, its `seed`) and
`metrics.json`. Writes `results.md` (per budget: every arm's test pair accuracy and point MAE on every task, mean
± sample std over seeds; the paired difference joint - other arm per task with its standard error, an exact
two-sided sign test and a seed-bootstrap 95% interval), `transfer.png` (arm x test task heat map per budget) and
`joint_vs_single.png` (per task: the joint arm beside the single-task and mixed arms that trained on it).

The joint arm runs the same 300 steps under both budgets, so its runs of `same_examples` stand for it in
`same_compute` too (a budget with no joint run of its own borrows them).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from unified_reward.reporting import grouped_bars, mean_spread

TASKS = ("image_generation", "image_understanding", "video_generation", "video_understanding")
JOINT = "reward_joint"
# arm (the experiment's task_name) -> the tasks it trains on
ARMS = {
    JOINT: TASKS,
    **{f"reward_{task}": (task,) for task in TASKS},
    "reward_image_only": ("image_generation", "image_understanding"),
    "reward_video_only": ("video_generation", "video_understanding"),
}
BUDGETS = ("same_examples", "same_compute")
BOOTSTRAP_RESAMPLES = 10_000


def arm_label(arm: str) -> str:
    return arm.removeprefix("reward_")


def load_runs(roots: list[Path]) -> list[dict]:
    """Every completed run under `roots` of a known arm: arm, budget, seed and test metrics."""
    runs = []
    for root in roots:
        for metrics_path in sorted(root.rglob("metrics.json")):
            config_path = metrics_path.parent / ".hydra" / "config.yaml"
            if not config_path.exists():
                continue
            config = yaml.safe_load(config_path.read_text())
            if config.get("task_name") not in ARMS:
                continue
            runs.append(
                {
                    "arm": config["task_name"],
                    "budget": (config.get("budget") or {}).get("name", "none"),
                    "seed": int(config["seed"]),
                    "metrics": json.loads(metrics_path.read_text())["metrics"],
                }
            )
    return runs


def by_seed(runs: list[dict]) -> dict[tuple[str, str, str, str], dict[int, float]]:
    """(budget, arm, metric, test task) -> {seed: value}; metric `acc` (pair accuracy) or `mae` (point MAE). A
    budget without joint runs of its own takes those of `same_examples` (the same 300 steps)."""
    table: dict[tuple[str, str, str, str], dict[int, float]] = defaultdict(dict)
    for run in runs:
        for task in TASKS:
            for metric, key in (("acc", f"test/acc/{task}_pair"), ("mae", f"test/mae/{task}_point")):
                if key in run["metrics"]:
                    table[(run["budget"], run["arm"], metric, task)][run["seed"]] = float(run["metrics"][key])
    for budget in BUDGETS[1:]:
        if not any(key[0] == budget and key[1] == JOINT for key in table):
            for (source, arm, metric, task), values in list(table.items()):
                if source == BUDGETS[0] and arm == JOINT:
                    table[(budget, arm, metric, task)] = dict(values)
    return table


def sign_test(differences: list[float]) -> float:
    """Exact two-sided sign test of "the median difference is 0": ties (0) dropped, p = P(|K - n/2| >= |k - n/2|)
    under K ~ Binomial(n, 1/2); 1.0 when every difference is 0."""
    signs = [d for d in differences if d != 0]
    n = len(signs)
    if n == 0:
        return 1.0
    k = sum(d > 0 for d in signs)
    extreme = abs(k - n / 2)
    return float(min(1.0, sum(math.comb(n, j) for j in range(n + 1) if abs(j - n / 2) >= extreme) / 2**n))


def bootstrap_interval(differences: list[float], seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean difference, resampling seeds with replacement."""
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired(joint: dict[int, float], other: dict[int, float]) -> dict | None:
    """joint - other over the seeds both have: mean, standard error, sign-test p, bootstrap interval, n."""
    seeds = sorted(set(joint) & set(other))
    if not seeds:
        return None
    differences = [joint[s] - other[s] for s in seeds]
    n = len(differences)
    stderr = float(np.std(differences, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    low, high = bootstrap_interval(differences) if n > 1 else (float("nan"), float("nan"))
    return {
        "mean": float(np.mean(differences)),
        "stderr": stderr,
        "p": sign_test(differences),
        "ci": (low, high),
        "n": n,
    }


def comparisons(table, budget: str) -> list[tuple[str, str, dict]]:
    """(test task, other arm, paired difference of pair accuracy joint - other arm) for every arm that trained
    on the task but is not the joint arm."""
    rows = []
    for task in TASKS:
        joint = table.get((budget, JOINT, "acc", task), {})
        for arm, trained in ARMS.items():
            if arm == JOINT or task not in trained:
                continue
            result = paired(joint, table.get((budget, arm, "acc", task), {}))
            if result is not None:
                rows.append((task, arm, result))
    return rows


def arms_of(table, budget: str) -> list[str]:
    return [arm for arm in ARMS if any(key[:2] == (budget, arm) for key in table)]


def markdown(table) -> str:
    sections = []
    for budget in BUDGETS:
        arms = arms_of(table, budget)
        if not arms:
            continue
        lines = [f"### Budget `{budget}`", ""]
        for metric, title in (("acc", "test pair accuracy"), ("mae", "test point MAE (lower is better)")):
            lines += [f"{title}; rows: the arm (what it trained on), columns: the test task", ""]
            lines += ["| arm | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
            for arm in arms:
                cells = []
                for task in TASKS:
                    cell = mean_spread(list(table.get((budget, arm, metric, task), {}).values()))
                    cells.append(f"**{cell}**" if task in ARMS[arm] and arm != JOINT else cell)
                lines.append(f"| {arm_label(arm)} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += [
            "joint - arm: test pair accuracy on a task both trained on, paired by seed (bold: an arm's own tasks)",
            "",
            "| test task | arm | joint - arm | std. error | sign test p | bootstrap 95% | seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        for task, arm, r in comparisons(table, budget):
            lines.append(
                f"| {task} | {arm_label(arm)} | {r['mean']:+.3f} | {r['stderr']:.3f} | {r['p']:.3f} | "
                f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | {r['n']} |"
            )
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def heat_map(table, path: Path) -> None:
    """Mean test pair accuracy, arm x test task, one panel per budget; the cells of an arm's own tasks framed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = [b for b in BUDGETS if arms_of(table, b)]
    figure, axes = plt.subplots(1, len(budgets), figsize=(5.2 * len(budgets), 4.2), squeeze=False)
    for axis, budget in zip(axes[0], budgets, strict=True):
        arms = arms_of(table, budget)
        grid = np.array(
            [
                [np.mean(list(v.values())) if (v := table.get((budget, a, "acc", t))) else np.nan for t in TASKS]
                for a in arms
            ]
        )
        image = axis.imshow(grid, vmin=0.3, vmax=1.0, cmap="viridis")
        for i, arm in enumerate(arms):
            for j, task in enumerate(TASKS):
                if not np.isnan(grid[i, j]):
                    axis.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white", fontsize=8)
                if task in ARMS[arm]:
                    axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
        axis.set_xticks(range(len(TASKS)), [t.replace("_", "\n") for t in TASKS], fontsize=8)
        axis.set_yticks(range(len(arms)), [arm_label(a) for a in arms], fontsize=8)
        axis.set_xlabel("test task")
        axis.set_title(f"budget {budget}: test pair accuracy", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot(table, path: Path, budget: str = BUDGETS[0]) -> None:
    """Per task: the joint arm, the single-task arm of that task and the mixed arm of its modality."""
    settings = ("joint", "single", "same modality")
    values = {}
    for task in TASKS:
        modality = task.split("_")[0]
        for setting, arm in zip(settings, (JOINT, f"reward_{task}", f"reward_{modality}_only"), strict=True):
            values[(task, setting)] = list(table.get((budget, arm, "acc", task), {}).values())
    grouped_bars(
        values, TASKS, settings, path, ylabel=f"test pair accuracy ({budget})", ylim=(0, 1), reference_line=0.5
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="folders of the runs (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    runs = load_runs(args.roots)
    if not runs:
        raise SystemExit(f"no completed run of an ablation arm (metrics.json, .hydra/config.yaml) under {args.roots}")
    table = by_seed(runs)
    text = markdown(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    heat_map(table, args.out / "transfer.png")
    plot(table, args.out / "joint_vs_single.png")
    print(text)


if __name__ == "__main__":
    main()
