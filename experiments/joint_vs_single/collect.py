"""Collect a joint-vs-single multirun into a markdown table and a PNG plot.

    python src/train.py -m experiment=reward_joint,reward_image_generation,reward_image_understanding,\
reward_video_generation,reward_video_understanding seed=1,2,3
    python experiments/joint_vs_single/collect.py logs/reward_*/multiruns/<time> [...] --out experiments/joint_vs_single

Each run folder holds `.hydra/config.yaml` (experiment task name, seed) and `metrics.json`. For every
task, the table compares the test pair accuracy (and point MAE) of the joint judge with that of the
judge trained on that task alone: mean and standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import yaml

from unified_reward.reporting import grouped_bars, mean_spread

TASKS = ("image_generation", "image_understanding", "video_generation", "video_understanding")
SETTINGS = ("single", "joint")


def load_runs(roots: list[Path]) -> list[dict]:
    runs = []
    for root in roots:
        for metrics_path in sorted(root.rglob("metrics.json")):
            config_path = metrics_path.parent / ".hydra" / "config.yaml"
            if not config_path.exists():
                continue
            config = yaml.safe_load(config_path.read_text())
            runs.append(
                {
                    "task_name": config["task_name"],
                    "seed": config["seed"],
                    "metrics": json.loads(metrics_path.read_text())["metrics"],
                }
            )
    return runs


def summarize(runs: list[dict]) -> dict[tuple[str, str, str], list[float]]:
    """(task, setting, metric) -> values over seeds; setting is `joint` or `single`."""
    table: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for run in runs:
        setting = "joint" if run["task_name"] == "reward_joint" else "single"
        for task in TASKS:
            if setting == "single" and run["task_name"] != f"reward_{task}":
                continue
            for metric, key in (("acc", f"test/acc/{task}_pair"), ("mae", f"test/mae/{task}_point")):
                if key in run["metrics"]:
                    table[(task, setting, metric)].append(run["metrics"][key])
    return table


def markdown(table) -> str:
    lines = [
        "| task | pair acc, single | pair acc, joint | point MAE, single | point MAE, joint |",
        "|---|---|---|---|---|",
    ]
    for task in TASKS:
        cells = [mean_spread(table.get((task, s, m), [])) for m in ("acc", "mae") for s in SETTINGS]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(table, path: Path) -> None:
    accuracies = {(task, setting): table.get((task, setting, "acc"), []) for task in TASKS for setting in SETTINGS}
    grouped_bars(accuracies, TASKS, SETTINGS, path, ylabel="test pair accuracy", ylim=(0, 1), reference_line=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="multirun folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    runs = load_runs(args.roots)
    if not runs:
        raise SystemExit(f"no runs with metrics.json under {args.roots}")
    table = summarize(runs)
    text = markdown(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    plot(table, args.out / "joint_vs_single.png")
    print(text)


if __name__ == "__main__":
    main()
