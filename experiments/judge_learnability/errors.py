"""Where a reasoning judge's pair verdicts go wrong: each error traced to the first step of its written rationale
that departs from the world's own.

    python experiments/judge_learnability/errors.py --judge logs/reward_joint/runs/<time>/judge --split val
    python experiments/judge_learnability/errors.py --judge <export> --world-seed 1 --split test --out errors.md

Judges every pair record of the split (the judge writes its rationale, then the verdict is read from its
probabilities, as in training's evaluation) and compares what it wrote with the record's rationale, step by step:
what each medium shows (`seen`), each check of each candidate (`check:<attribute>`), the tallies (`tally`), the
comparison of the tallies (`compare`), then the verdict. An error is counted under the first step that departs;
`verdict` means every written step was right and the verdict still was not. Also per stream: the accuracy on
ties and on the rest, tie recall (ties called ties), and how often the verdict follows from the judge's own
written tallies (`consistent`).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

from unified_reward.data.media import VideoSampling
from unified_reward.data.reading import ShardStream
from unified_reward.data.tasks import media_kind_of
from unified_reward.judging.generative import Judge
from unified_reward.judging.queries import VERDICTS, JudgeQuery
from unified_reward.synthetic.scene import attributes_of
from unified_reward.synthetic.source import SyntheticWorld

_TALLY = re.compile(r"^(?:Image|Video|Answer) \d: .* (\d)/(\d)\.$")


def steps(rationale: str, kind: str, asked: list[str]) -> list[tuple[str, str]]:
    """(step name, text) for each step of a rationale in the world's format."""
    out: list[tuple[str, str]] = []
    for line in rationale.strip().split("\n"):
        if " shows " in line:
            out.append(("seen", line))
        elif _TALLY.match(line):
            items, tally = line.split(": ", 1)[1].rsplit(". ", 1)
            for attribute, item in zip(asked, items.split(", "), strict=False):
                out.append((f"check:{attribute}", item))
            out.append(("tally", tally))
        else:
            out.append(("compare", line))
    return out


def first_departure(written: str, truth: str, kind: str, asked: list[str]) -> str | None:
    """The name of the first step of `written` that differs from `truth`'s, or None when all agree."""
    mine, theirs = steps(written, kind, asked), steps(truth, kind, asked)
    for (name, text), (_, right) in zip(mine, theirs, strict=False):
        if text != right:
            return name
    return None if len(mine) == len(theirs) else "length"


def tallies_verdict(written: str) -> str | None:
    """The verdict the judge's own written tallies imply, or None when it wrote fewer than two."""
    found = [int(m.group(1)) for line in written.split("\n") if (m := _TALLY.match(line))]
    if len(found) < 2:
        return None
    return "tie" if found[0] == found[1] else "first" if found[0] > found[1] else "second"


def analyse(judge: Judge, records) -> dict[str, dict]:
    per_stream: dict[str, dict] = defaultdict(lambda: {"n": 0, "correct": 0, "causes": Counter(), "classes": Counter()})
    judgments = judge.judge([JudgeQuery.of(r) for r in records])
    for record, judgment in zip(records, judgments, strict=True):
        predicted = max(VERDICTS, key=lambda v: judgment.probabilities.get(v, 0.0))
        kind = media_kind_of(record.task)
        asked = record.meta.get("asked") or list(attributes_of(kind))
        written = judgment.text or ""
        row = per_stream[record.stream]
        row["n"] += 1
        right = predicted == record.label
        row["correct"] += right
        group = "tie" if record.label == "tie" else "other"
        row["classes"][f"{group}/n"] += 1
        row["classes"][f"{group}/correct"] += right
        row["classes"]["tie_called"] += predicted == "tie" and record.label == "tie"
        implied = tallies_verdict(written)
        row["classes"]["consistent"] += implied == predicted
        row["classes"]["with_tallies"] += implied is not None
        if not right:
            cause = first_departure(written.rsplit("\n", 1)[0], record.rationale, kind, asked) or "verdict"
            row["causes"][cause] += 1
    return per_stream


def markdown(per_stream: dict[str, dict]) -> str:
    causes = sorted({c for row in per_stream.values() for c in row["causes"]})
    head = ["stream", "n", "acc", "acc ties", "acc others", "tie recall", "consistent", *causes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stream, row in sorted(per_stream.items()):
        classes = row["classes"]

        def share(hits: float, total: float) -> str:
            return f"{hits / total:.3f}" if total else "-"

        cells = [
            stream,
            str(row["n"]),
            share(row["correct"], row["n"]),
            share(classes["tie/correct"], classes["tie/n"]),
            share(classes["other/correct"], classes["other/n"]),
            share(classes["tie_called"], classes["tie/n"]),
            share(classes["consistent"], classes["with_tallies"]),
            *(str(row["causes"].get(c, 0)) for c in causes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", required=True, help="a reasoning judge's export folder")
    parser.add_argument("--world-seed", type=int, default=0, help="data.source.seed of the world")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--cache-dir", default="data/synthetic")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()

    world = SyntheticWorld(args.cache_dir, seed=args.world_seed)
    world.prepare()
    sampling = VideoSampling(num_frames=world.config.num_frames)
    records = [
        record
        for stream, urls in sorted(world.streams(args.split).items())
        if stream.endswith("_pair")
        for record in ShardStream(urls, name=stream, sampling=sampling)
    ]
    judge = Judge.from_pretrained(args.judge, batch_size=args.batch_size)
    table = markdown(analyse(judge, records))
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
