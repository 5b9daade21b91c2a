"""Convert the official UnifiedReward training release (LLaVA-style JSON) into our shards.

Each official record has `conversations` (a human turn holding the judge instruction, a gpt turn holding the
judge's answer) and its media, relative to `media_root`:
- `image`: one path (or a list); `images`: 1-2 images, or more = frames of one video or of two, decided per
  record (frames from two folders or two name stems are two videos; else a pair verdict means two videos of
  equal halves, a point record one video);
- `video`: a video file, or a folder of frames (read in name order, at most `max_frames` spread evenly), or a
  list of those.
Task and mode come from the media and the answer form: a pair verdict (`Image 1 is better ...`, `The better
response: [2]`, `Overall Judgment: Answer 2 ...`), two scores on the answer's first line (LLaVA-bench: `10 9`,
the first and second response's), `Final Score: X` on the scale the instruction names, or VideoFeedback's
per-dimension scores with no final score (every dimension kept in `meta["dimensions"]`, the point label by
`videofeedback_label`: the mean of the five, or one named dimension, on 1-4). Caption-rating records
(LLaVA-Critic's "rate for this Text Caption") are image understanding: the caption is the rated answer.
UnifiedReward-Edit's pairwise form (`Source Image (before editing)` ... `Text instruction - <instruction>`, the
images source, edit 1, edit 2) is image editing; its pointwise form (a JSON list of two 0-25 scores) is reported
as not convertible. Captions, questions and answers in brackets may span several lines. The record's own
instruction and answer are kept in `meta` (the answer also as `rationale`). Every record that cannot be converted
is reported with the reason.

    python -m unified_reward.official.convert --json train.json --media-root data/ --out shards/train
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unified_reward.data.schema import PreferenceRecord, RecordError
from unified_reward.data.shards import ShardSetWriter
from unified_reward.official.media import record_media
from unified_reward.official.records import (
    CAPTION_RATING,
    EDIT_INSTRUCTION,
    EDIT_JUDGMENT,
    QUESTION,
    TWO_VIDEOS,
    Unconvertible,
    dimension_scores,
    find_answers,
    find_caption,
    find_question,
    point_label,
    record_turns,
    two_score_verdict,
    videofeedback_point_label,
)
from unified_reward.prompts.parsing import parse_pair, parse_score, parse_two_scores


@dataclass
class ConversionReport:
    converted: Counter
    failures: list[dict[str, Any]]

    def summary(self) -> str:
        lines = [
            f"converted {sum(self.converted.values())} records: {dict(self.converted)}",
            f"could not convert {len(self.failures)} records",
        ]
        reasons = Counter(f["reason"].split(":")[0] for f in self.failures)
        lines += [f"  {n} x {reason}" for reason, n in reasons.most_common()]
        return "\n".join(lines)


def convert_record(
    record: dict[str, Any],
    record_id: str,
    media_root: Path,
    *,
    source: str,
    fps: float = 1.0,
    max_frames: int = 32,
    default_scale: tuple[float, float] | None = None,
    videofeedback_label: str = "mean",
) -> PreferenceRecord:
    instruction, answer = record_turns(record)
    two_scores = parse_two_scores(answer)
    pair = parse_pair(answer) if two_scores is None else None
    dimensions = dimension_scores(record, answer)
    is_point = two_scores is None and (parse_score(answer).valid or bool(dimensions))
    if not is_point and two_scores is None and not pair.valid:
        raise Unconvertible("answer is neither a pairwise verdict nor 'Final Score: X'")
    two_videos = not is_point and bool(TWO_VIDEOS.search(instruction) or re.search(r"video\s*[12]", answer, re.I))
    editing = bool(EDIT_JUDGMENT.search(instruction))
    media = record_media(record, media_root, fps, max_frames, two_videos, separate_images=editing)
    kind = media[0].kind
    meta: dict[str, Any] = {"instruction": instruction, "official_id": record.get("id")}
    if editing:  # UnifiedReward-Edit's pairwise form: source image, edited images, `Text instruction - ...`
        found = EDIT_INSTRUCTION.search(instruction)
        if found is None:
            raise Unconvertible("edit judgment without its 'Text instruction - ...'")
        task, prompt, context, candidates = "image_editing", found.group(1), media[0], media[1:]
    elif CAPTION_RATING.search(instruction) and len(media) == 1 and is_point:  # LLaVA-Critic caption rating
        task, prompt, context = f"{kind}_understanding", find_question(instruction), media[0]
        candidates = [find_caption(instruction, {})]
    elif bool(QUESTION.search(instruction)) and len(media) == 1 and not (is_point and dimensions):
        task, prompt, context = f"{kind}_understanding", find_question(instruction), media[0]
        candidates = find_answers(instruction, 1 if is_point else 2)
    else:
        task, prompt, context, candidates = f"{kind}_generation", find_caption(instruction, record), None, media
    expected = 1 if is_point else 2
    if len(candidates) != expected:
        raise Unconvertible(
            f"{'point' if is_point else 'pair'} judgment for {task} needs {expected} candidates, "
            f"record has {len(candidates)}"
        )
    if two_scores is not None:
        label, meta["scores"] = two_score_verdict(two_scores), list(two_scores)
    elif not is_point:
        label = pair.verdict
    elif parse_score(answer).valid:
        label = point_label(instruction, answer, default_scale)
    else:
        label, meta["dimensions"] = videofeedback_point_label(dimensions, videofeedback_label), dimensions
    if dimensions and "dimensions" not in meta:
        meta["dimensions"] = dimensions
    try:
        return PreferenceRecord(
            id=record_id,
            task=task,
            mode="point" if is_point else "pair",
            prompt=prompt,
            candidates=tuple(candidates),
            label=label,
            source=source,
            context=context,
            rationale=answer,
            meta=meta,
        )
    except RecordError as error:
        raise Unconvertible(f"invalid record: {error}") from error


def load_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    records = json.loads(text)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return records


def convert_file(
    json_path: str | Path,
    media_root: str | Path,
    out: str | Path,
    *,
    source: str | None = None,
    fps: float = 1.0,
    max_frames: int = 32,
    default_scale: tuple[float, float] | None = None,
    videofeedback_label: str = "mean",
    shard_size: int = 1000,
) -> ConversionReport:
    json_path, media_root = Path(json_path), Path(media_root)
    source = source or json_path.stem
    converted: Counter = Counter()
    failures: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    with ShardSetWriter(out, max_count=shard_size) as writer:
        for index, raw in enumerate(load_records(json_path)):
            record_id = f"{source}-{raw.get('id', index)}" if isinstance(raw, dict) else f"{source}-{index}"
            try:
                if not isinstance(raw, dict):
                    raise Unconvertible("record is not a JSON object")
                if record_id in seen_ids:
                    raise Unconvertible(f"duplicate id {record_id!r}")
                record = convert_record(
                    raw,
                    record_id,
                    media_root,
                    source=source,
                    fps=fps,
                    max_frames=max_frames,
                    default_scale=default_scale,
                    videofeedback_label=videofeedback_label,
                )
            except Unconvertible as error:
                failures.append({"index": index, "id": record_id, "reason": str(error)})
                continue
            seen_ids.add(record_id)
            writer.write(record)
            converted[record.stream] += 1
    report = ConversionReport(converted, failures)
    Path(out, "conversion_report.json").write_text(
        json.dumps({"converted": dict(converted), "failures": failures}, indent=2)
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, type=Path, help="official .json (a list) or .jsonl file")
    parser.add_argument("--media-root", required=True, type=Path, help="folder the media paths are relative to")
    parser.add_argument("--out", required=True, type=Path, help="output shard folder, e.g. shards/train")
    parser.add_argument("--source", default=None, help="dataset name stored in each record (default: file stem)")
    parser.add_argument("--fps", type=float, default=1.0, help="frame rate given to videos made from frame lists")
    parser.add_argument("--max-frames", type=int, default=32, help="frames kept from a `video` folder of frames")
    parser.add_argument("--point-scale", default=None, help="LOW,HIGH for point records whose text names no scale")
    parser.add_argument(
        "--videofeedback-label",
        default="mean",
        help="point label of VideoFeedback records (no overall score): 'mean' of the five dimensions, or one "
        "dimension's name, e.g. 'text-to-video alignment' (all five are kept in meta either way)",
    )
    parser.add_argument("--shard-size", type=int, default=1000)
    args = parser.parse_args(argv)
    scale = tuple(float(x) for x in args.point_scale.split(",")) if args.point_scale else None
    report = convert_file(
        args.json,
        args.media_root,
        args.out,
        source=args.source,
        fps=args.fps,
        max_frames=args.max_frames,
        default_scale=scale,
        videofeedback_label=args.videofeedback_label,
        shard_size=args.shard_size,
    )
    print(report.summary())
    for failure in report.failures[:20]:
        print(f"  record {failure['index']} ({failure['id']}): {failure['reason']}")
    if len(report.failures) > 20:
        print(f"  ... all {len(report.failures)} in {args.out / 'conversion_report.json'}")


if __name__ == "__main__":
    main()
