"""Learning curves of reward SFT runs: validation pair accuracy per task against step, and, where the run had the
rationale probe (`synthetic.rationale_probe.RationaleProbe`), the teacher-forced accuracy of each rationale step.

    python experiments/judge_learnability/curves.py before=logs/curves_before after=logs/curves_after \
        --out experiments/judge_learnability

Each `<setting>=<folder>` names a folder holding run directories (searched recursively for `.hydra/config.yaml`);
a run's seed is read from its config. Writes `curves.md` (per setting and step: mean ± sample std over seeds of each
task's validation pair accuracy, and the probe's per-step accuracies) and `curves.png` (one panel per task, one line
per run, a colour per setting).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import yaml

from unified_reward.reporting import mean_spread

TASKS = ("image_generation", "image_understanding", "video_generation", "video_understanding")
PROBE_ROLES = ("asked", "seen", "cand", "true", "check", "tally", "compare", "verdict", "verdict_tie", "score")


def val_accuracy(run: Path) -> dict[str, dict[int, float]]:
    """{task: {step: val pair accuracy}} from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for events in run.glob("tensorboard/**/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for task in TASKS:
            tag = f"val/acc/{task}_pair"
            if tag in accumulator.Tags()["scalars"]:
                for event in accumulator.Scalars(tag):
                    curves[task][event.step] = event.value
    return curves


def probe_curves(run: Path) -> dict[str, dict[int, float]]:
    """{`<task>/<role>`: {step: accuracy}}, pair and point streams of a task averaged by token count's proxy (the
    mean of the two streams' values)."""
    path = run / "rationale_probe.jsonl"
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for name, value in row.items():
                if name == "step":
                    continue
                stream, role = name.split("/")
                task = stream.rsplit("_", 1)[0]
                curves[f"{task}/{role}"][row["step"]].append(value)
    return {k: {s: sum(v) / len(v) for s, v in steps.items()} for k, steps in curves.items()}


def load(settings: dict[str, Path]) -> list[dict]:
    runs = []
    for setting, root in settings.items():
        for config_path in sorted(root.rglob(".hydra/config.yaml")):
            run = config_path.parent.parent
            config = yaml.safe_load(config_path.read_text())
            seed = (config.get("data") or {}).get("source", {}).get("seed", 0), config["seed"]
            runs.append(
                {
                    "setting": setting,
                    "world": seed[0],
                    "seed": seed[1],
                    "val": val_accuracy(run),
                    "probe": probe_curves(run),
                }
            )
    return runs


def markdown(runs: list[dict]) -> str:
    lines = ["## Validation pair accuracy (mean ± sample std over runs)", ""]
    lines += ["| setting | step | " + " | ".join(TASKS) + " | mean |", "|---|---|" + "---|" * (len(TASKS) + 1)]
    for setting in dict.fromkeys(r["setting"] for r in runs):
        mine = [r for r in runs if r["setting"] == setting]
        steps = sorted({s for r in mine for curve in r["val"].values() for s in curve})
        for step in steps:
            cells = [mean_spread([r["val"][t][step] for r in mine if step in r["val"].get(t, {})]) for t in TASKS]
            means = [
                sum(r["val"][t][step] for t in TASKS) / len(TASKS)
                for r in mine
                if all(step in r["val"].get(t, {}) for t in TASKS)
            ]
            lines.append(f"| {setting} | {step} | " + " | ".join(cells) + f" | {mean_spread(means)} |")
    probed = [r for r in runs if r["probe"]]
    if probed:
        lines += ["", "## Teacher-forced accuracy of each rationale step (mean over runs and the 4 tasks)", ""]
        lines += ["| setting | step | " + " | ".join(PROBE_ROLES) + " |", "|---|---|" + "---|" * len(PROBE_ROLES)]
        for setting in dict.fromkeys(r["setting"] for r in probed):
            mine = [r for r in probed if r["setting"] == setting]
            steps = sorted({s for r in mine for curve in r["probe"].values() for s in curve})
            for step in steps:
                cells = []
                for role in PROBE_ROLES:
                    values = [
                        r["probe"][f"{t}/{role}"][step]
                        for r in mine
                        for t in TASKS
                        if step in r["probe"].get(f"{t}/{role}", {})
                    ]
                    cells.append(f"{sum(values) / len(values):.2f}" if values else "-")
                lines.append(f"| {setting} | {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(
        zip(dict.fromkeys(r["setting"] for r in runs), ("tab:red", "tab:blue", "tab:green", "tab:purple"), strict=False)
    )
    figure, axes = plt.subplots(1, len(TASKS), figsize=(14, 3.2), sharey=True)
    for axis, task in zip(axes, TASKS, strict=True):
        for run in runs:
            curve = run["val"].get(task, {})
            if curve:
                steps = sorted(curve)
                axis.plot(
                    steps,
                    [curve[s] for s in steps],
                    color=colours[run["setting"]],
                    alpha=0.7,
                    marker=".",
                    label=run["setting"],
                )
        axis.set_title(task.replace("_", " "))
        axis.set_xlabel("step")
        axis.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
    axes[0].set_ylabel("validation pair accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[-1].legend(unique.values(), unique.keys())
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="+", help="<setting>=<folder of runs>")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.settings)
    runs = load({name: Path(folder) for name, folder in settings.items()})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curves.md").write_text(markdown(runs))
    plot(runs, args.out / "curves.png")
    print(markdown(runs))


if __name__ == "__main__":
    main()
