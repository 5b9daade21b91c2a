"""Online GRPO vs offline DPO at the same judge calls: a markdown table and two plots.

    python experiments/grpo/collect.py <offline root> <grpo root> --out experiments/grpo

Offline rows come from experiments/pipeline/bracket.sh's `pipeline.json` (<offline>/image_understanding/seed*/<judge>);
online rows from experiments/grpo/compare.sh's runs (<grpo>/seed*/<judge>-<reward>/metrics.json and their TensorBoard
scalars). Scores are the oracle's on the 200 held-out questions (the fraction of an answer stated right), before
and after; mean ± sample std over seeds. `comparison.png`: the sampled-answer gain per judge and method.
`training.png`: over training (x: judge calls), the oracle's score of the policy's sampled training answers, the
judge's own score of them (score rewards), and how often the judge's reward orders two answers of a group as the
oracle does (concordance): a judge reward that climbs while the oracle's score does not is reward hacking.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from unified_reward.reporting import grouped_bars, mean_spread

JUDGES = ("random", "joint", "oracle")  # the floor first, the ceiling last
METHODS = ("offline DPO", "GRPO win_rate", "GRPO score")
COLUMNS = {  # header -> (offline pipeline.json policy_metrics key, GRPO metrics.json key)
    "judge calls (train)": ("judge_calls", "train/judge_calls_total"),
    "greedy before": ("test/oracle_score_reference", "test/oracle_score_reference"),
    "greedy gain": ("test/oracle_score_gain", "test/oracle_score_gain"),
    "sampled before": ("test/oracle_score_sampled_reference", "test/oracle_score_sampled_reference"),
    "sampled gain": ("test/oracle_score_sampled_gain", "test/oracle_score_sampled_gain"),
    "its SE (one run)": ("test/oracle_score_sampled_gain_stderr", "test/oracle_score_sampled_gain_stderr"),
    "hallucinating before": ("test/hallucination_sampled_reference", "test/hallucination_sampled_reference"),
    "after": ("test/hallucination_sampled", "test/hallucination_sampled"),
}


def offline_rows(root: Path) -> dict[tuple[str, str], list[dict]]:
    rows = defaultdict(list)
    for path in sorted(root.glob("image_understanding/seed*/*/pipeline.json")):
        report = json.loads(path.read_text())
        train = report["filter"]["train"]
        metrics = dict(report["policy_metrics"])
        metrics["judge_calls"] = train.get("pair_judgments", 0) + train.get("point_judgments", 0)
        rows[(report["judge_kind"], "offline DPO")].append(metrics | {"seed": report["seed"]})
    return rows


def online_rows(root: Path) -> dict[tuple[str, str], list[dict]]:
    rows = defaultdict(list)
    for path in sorted(root.glob("seed*/*-*/metrics.json")):
        judge, reward = path.parent.name.split("-", 1)
        metrics = json.loads(path.read_text())["metrics"]
        if "test/oracle_score" in metrics:  # finished, tested
            seed = int(path.parent.parent.name.removeprefix("seed"))
            rows[(judge, f"GRPO {reward}")].append(metrics | {"seed": seed, "run": path.parent})
    return rows


def table(rows: dict[tuple[str, str], list[dict]]) -> str:
    lines = [
        "| judge | method | seeds | " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * (3 + len(COLUMNS)),
    ]
    for judge in JUDGES:
        for method in METHODS:
            runs = rows.get((judge, method), [])
            if not runs:
                continue
            side = 0 if method == "offline DPO" else 1
            cells = []
            for keys in COLUMNS.values():
                values = [r[keys[side]] for r in runs if r.get(keys[side]) is not None]
                digits = 0 if keys[side].endswith(("calls", "calls_total")) else 3
                cells.append(mean_spread(values, digits))
            seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
            lines.append(f"| {judge} | {method} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed(rows: dict[tuple[str, str], list[dict]], key_online: str, key_offline: str) -> str:
    seeds = sorted({r["seed"] for runs in rows.values() for r in runs})
    lines = ["| judge | method | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|" + "---|" * (2 + len(seeds))]
    for judge in JUDGES:
        for method in METHODS:
            runs = {r["seed"]: r for r in rows.get((judge, method), [])}
            if not runs:
                continue
            key = key_offline if method == "offline DPO" else key_online
            cells = [f"{runs[s][key]:+.3f}" if s in runs and runs[s].get(key) is not None else "-" for s in seeds]
            lines.append(f"| {judge} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scalars(run: Path, tags: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {tag: [] for tag in tags}
    for events in sorted(run.rglob("events.out.tfevents*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in tags:
            if tag in accumulator.Tags()["scalars"]:
                out[tag] += [(e.step, e.value) for e in accumulator.Scalars(tag)]
    return out


def training_plot(rows: dict[tuple[str, str], list[dict]], path: Path) -> None:
    """Over training (x: judge calls), per GRPO run: the oracle's score of the sampled answers, the judge's own
    reward of them (score runs: the 1-5 mean rescaled to 0-1; a win rate's mean is 1/2 by construction), and the
    judge-oracle concordance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = ("train/judge_calls_total", "train/oracle_reward", "train/reward/mean", "train/judge_oracle_concordance")
    titles = (
        "oracle's score of the sampled training answers",
        "judge's score of them (score runs, 1-5 -> 0-1)",
        "judge orders two answers as the oracle (concordance)",
    )
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colours = {"random": "tab:grey", "joint": "tab:blue", "oracle": "tab:green"}
    styles = {"GRPO win_rate": "-", "GRPO score": "--"}
    for (judge, method), runs in sorted(rows.items()):
        if method not in styles:
            continue
        for n, run in enumerate(runs):
            series = scalars(run["run"], tags)
            calls = dict(series["train/judge_calls_total"])
            for axis, tag in zip(axes, tags[1:], strict=True):
                if tag == "train/reward/mean" and method != "GRPO score":
                    continue
                points = [(calls[s], v) for s, v in series[tag] if s in calls]
                if not points:
                    continue
                x, y = np.array(points).T
                if tag == "train/reward/mean":
                    y = (y - 1) / 4
                smooth = np.convolve(y, np.ones(3) / 3, mode="valid") if len(y) >= 3 else y
                label = f"{judge}, {method.removeprefix('GRPO ')}" if n == 0 else None
                axis.plot(
                    x[len(x) - len(smooth) :],
                    smooth,
                    styles[method],
                    color=colours[judge],
                    alpha=0.8,
                    label=label,
                    linewidth=1,
                )
    for axis, title in zip(axes, titles, strict=True):
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("judge calls")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("offline", type=Path)
    parser.add_argument("online", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = offline_rows(args.offline) | online_rows(args.online)
    args.out.mkdir(parents=True, exist_ok=True)
    gains = per_seed(rows, "test/oracle_score_sampled_gain", "test/oracle_score_sampled_gain")
    text = f"{table(rows)}\n\nSampled-answer gain per seed:\n\n{gains}\n"
    (args.out / "results.md").write_text(text)
    print(text)
    values = {
        (judge, method): [r["test/oracle_score_sampled_gain"] for r in runs] for (judge, method), runs in rows.items()
    }
    grouped_bars(
        values,
        JUDGES,
        [m for m in METHODS if any(k[1] == m for k in values)],
        args.out / "comparison.png",
        ylabel="sampled-answer score gain",
        reference_line=0.0,
    )
    training_plot(rows, args.out / "training.png")


if __name__ == "__main__":
    main()
