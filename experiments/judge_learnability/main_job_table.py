"""The main job over seeds and worlds: one row per run of `experiment=reward_joint`, against the targets.

    python src/train.py -m experiment=reward_joint seed=0,1,2,3,4 data.source.seed=0,1
    python experiments/judge_learnability/main_job_table.py logs/reward_joint/multiruns/<time>

Each run folder (searched recursively for `metrics.json` beside `.hydra/config.yaml`) gives the world
(`data.source.seed`), the training seed, test pair accuracy per task and its mean, the point streams' Spearman,
the invalid-answer rate over all test streams, tie recall on the generation pairs, and the run's wall time
(`status.json`, world build included). The last rows give mean ± sample std per world and over all runs, and how
many runs meet each target: mean pair accuracy >= 0.95, every task >= 0.92, every Spearman >= 0.85, no invalid
answer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from unified_reward.data.tasks import PAPER_TASKS, judges_media
from unified_reward.reporting import mean_spread

MEAN_TARGET, TASK_TARGET, SPEARMAN_TARGET = 0.95, 0.92, 0.85


def load_run(folder: Path) -> dict:
    config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    status_path = folder / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    invalid = [value for name, value in metrics.items() if name.startswith("test/invalid/")]
    accuracies = [metrics[f"test/acc/{task}_pair"] for task in PAPER_TASKS]
    return {
        "world": config["data"]["source"]["seed"],
        "seed": config["seed"],
        "acc": accuracies,
        "mean": sum(accuracies) / len(PAPER_TASKS),
        "spearman": [metrics[f"test/spearman/{task}_point"] for task in PAPER_TASKS],
        "invalid": max(invalid) if invalid else float("nan"),
        "tie_recall": [metrics.get(f"test/tie_recall/{t}_pair", float("nan")) for t in PAPER_TASKS if judges_media(t)],
        "minutes": status.get("seconds", float("nan")) / 60,
    }


def meets(run: dict) -> dict[str, bool]:
    return {
        "mean": run["mean"] >= MEAN_TARGET,
        "task": min(run["acc"]) >= TASK_TARGET,
        "spearman": min(run["spearman"]) >= SPEARMAN_TARGET,
        "invalid": run["invalid"] == 0,
    }


def markdown(runs: list[dict]) -> str:
    lines = [
        "| world | seed | pair acc: img gen / img und / vid gen / vid und | mean | Spearman (same order) | invalid | "
        "tie recall (img gen / vid gen) | minutes | meets all |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        accuracies = " / ".join(f"{a:.3f}" for a in run["acc"])
        spearmans = " / ".join(f"{s:.3f}" for s in run["spearman"])
        ties = " / ".join(f"{t:.2f}" for t in run["tie_recall"])
        lines.append(
            f"| {run['world']} | {run['seed']} | {accuracies} | {run['mean']:.3f} | {spearmans} | "
            f"{run['invalid']:.3f} | {ties} | {run['minutes']:.1f} | {'yes' if all(meets(run).values()) else 'no'} |"
        )
    groups = {f"world {w}": [r for r in runs if r["world"] == w] for w in sorted({r["world"] for r in runs})}
    groups["all"] = runs
    for name, group in groups.items():
        per_task = " / ".join(mean_spread([r["acc"][i] for r in group]) for i in range(len(PAPER_TASKS)))
        means = mean_spread([r["mean"] for r in group])
        spearmans = " / ".join(mean_spread([r["spearman"][i] for r in group]) for i in range(len(PAPER_TASKS)))
        lines.append(f"| {name} ({len(group)} runs) | | {per_task} | {means} | {spearmans} | | | | |")
    counts = {key: sum(meets(run)[key] for run in runs) for key in ("mean", "task", "spearman", "invalid")}
    lines.append("")
    lines.append(
        f"Runs meeting each target, of {len(runs)}: mean >= {MEAN_TARGET} {counts['mean']}; every task >= "
        f"{TASK_TARGET} {counts['task']}; every Spearman >= {SPEARMAN_TARGET} {counts['spearman']}; no invalid "
        f"answer {counts['invalid']}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="run or multirun folders (searched recursively)")
    args = parser.parse_args()
    folders = sorted(
        {p.parent for root in args.roots for p in root.rglob("metrics.json") if (p.parent / ".hydra").is_dir()}
    )
    runs = sorted((load_run(folder) for folder in folders), key=lambda r: (r["world"], r["seed"]))
    print(markdown(runs))


if __name__ == "__main__":
    main()
