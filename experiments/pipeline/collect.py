"""Collect pipeline runs (their `pipeline.json`) into a markdown table and a PNG plot.

    python src/pipeline.py -m domain=image_understanding,video_understanding,image_generation,video_generation \
judge_kind=random,single,joint,oracle seed=1,2,3
    python experiments/pipeline/collect.py logs/pipeline_*/multiruns/<time> [...] --out experiments/pipeline

For every domain and judge (`random`: the floor, `single`, `joint`, `oracle`: the ceiling; a judge export passed
with judge=... is labelled by its judge_kind), the policy's oracle score before and after DPO on the held-out
prompts (greedy answers, and sampled ones with their hallucination rate where measured), the gain, and how often
the filter's kept training pairs agree with the oracle: mean and standard deviation over seeds. Scores are the
oracle's: the fraction of an answer that is right (understanding, 0-1) or the mean score of samples (generation,
1-5).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from unified_reward.reporting import grouped_bars, mean_spread

DOMAINS = ("image_understanding", "video_understanding", "image_generation", "video_generation")
JUDGES = ("random", "single", "joint", "oracle")  # the floor first, the ceiling last
POLICY = "policy_metrics"  # the DPO run's test metrics, in pipeline.json
METRICS = {
    "before": "policy_score_before",
    "after": "policy_score_after",
    "gain": "policy_score_gain",
    "gain (sampled)": (POLICY, "test/oracle_score_sampled_gain"),
    "SE of the sampled gain": (POLICY, "test/oracle_score_sampled_gain_stderr"),
    "hallucination before": (POLICY, "test/hallucination_sampled_reference"),
    "hallucination after": (POLICY, "test/hallucination_sampled"),
    "SE of a score": (POLICY, "test/oracle_score_stderr", "test/score_stderr"),  # understanding, generation
    "SE of the gain": (POLICY, "test/oracle_score_gain_stderr", "test/score_gain_stderr"),
    "agreement": "oracle_agreement_train",
}
HEADERS = {
    "before": "greedy score before DPO",
    "after": "after DPO",
    "gain": "gain (greedy)",
    "gain (sampled)": "gain (4 sampled answers per question)",
    "SE of the sampled gain": "its standard error (one run, paired)",
    "hallucination before": "sampled answers hallucinating, before",
    "hallucination after": "after",
    "SE of a score": "standard error of one run's greedy score (generation: of the sample score)",
    "SE of the gain": "standard error of one run's greedy gain (paired; generation: of the sample score's gain)",
    "agreement": "oracle agreement of kept pairs (train)",
}


def load_reports(roots: list[Path]) -> list[dict]:
    return [json.loads(path.read_text()) for root in roots for path in sorted(root.rglob("pipeline.json"))]


def _value(report: dict, key):
    if isinstance(key, tuple):  # (section, name, another name for the same fact in another domain, ...)
        section = report.get(key[0], {})
        return next((section[name] for name in key[1:] if name in section), None)
    return report.get(key)


def summarize(reports: list[dict]) -> dict[tuple[str, str, str], list[float]]:
    """(domain, judge, metric) -> values over seeds; a metric a run could not measure (None) is left out."""
    table: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for report in reports:
        for metric, key in METRICS.items():
            value = _value(report, key)
            if value is not None:
                table[(report["domain"], report["judge_kind"], metric)].append(value)
    return table


def _judges(table) -> list[str]:
    return [judge for judge in JUDGES if any(key[1] == judge for key in table)]


def markdown(table) -> str:
    metrics = [m for m in METRICS if any(key[2] == m for key in table)]
    lines = [
        "| domain | judge | " + " | ".join(HEADERS[m] for m in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for domain in DOMAINS:
        for judge in _judges(table):
            if not any(key[:2] == (domain, judge) for key in table):
                continue
            cells = [mean_spread(table.get((domain, judge, metric), [])) for metric in metrics]
            lines.append(f"| {domain} | {judge} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(table, path: Path) -> None:
    """Per domain, the gain of the sampled answers' score where it was measured (a policy's distribution, what DPO
    moves), else of the policy's score (greedy answers; generators' samples)."""
    judges = _judges(table)
    gains = {}
    for domain in DOMAINS:
        sampled = any(key[0] == domain and key[2] == "gain (sampled)" for key in table)
        metric = "gain (sampled)" if sampled else "gain"
        gains |= {(domain, judge): table.get((domain, judge, metric), []) for judge in judges}
    label = "oracle score gain"
    grouped_bars(gains, DOMAINS, judges, path, ylabel=label, reference_line=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="pipeline run or multirun folders (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    reports = load_reports(args.roots)
    if not reports:
        raise SystemExit(f"no pipeline.json under {args.roots}")
    table = summarize(reports)
    text = markdown(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    plot(table, args.out / "policy_gain.png")
    print(text)


if __name__ == "__main__":
    main()
