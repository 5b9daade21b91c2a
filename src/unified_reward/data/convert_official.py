"""Convert the official UnifiedReward training release (LLaVA-style JSON) into our shards.

Each official record has `conversations` (a human turn holding the judge instruction, a gpt turn
holding the judge's answer) and its media: `image` (one path), `images` (a list: 1-2 images, or
more = pre-extracted video frames, `frames_per_video` per video) or `video` (a path or a list of
paths), relative to `media_root`. Task and mode are inferred from the media and the answer form
(`Image 1 is better ...`, `Overall Judgment: Answer 2 ...`, `Final Score: 7`). The record's own
instruction and answer texts are kept in `meta` (and the answer as `rationale`), so a judge can be
trained on the release's wording. Every record that cannot be converted is reported with the reason.

    python -m unified_reward.data.convert_official --json train.json --media-root data/ --out shards/train
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unified_reward.data.media import encode_video
from unified_reward.data.schema import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    EncodedMedia,
    PointLabel,
    PreferenceRecord,
    RecordError,
)
from unified_reward.data.shards import ShardSetWriter
from unified_reward.prompts.parsing import parse_pair, parse_score


class Unconvertible(ValueError):
    """A record that cannot be converted; the message is the reason reported to the user."""


_CAPTION = [
    re.compile(r"text\s+caption\s*[:：]\s*\[?(.+?)\]?\s*(?:\n|$)", re.IGNORECASE),
    re.compile(r"(?:caption|prompt)\s*[:：]\s*\[?(.+?)\]?\s*(?:\n|$)", re.IGNORECASE),
]
_QUESTION = re.compile(r"question\s*[:：]\s*\[?(.+?)\]?\s*\n(?=[^\n]*(?:answer|response)\b)", re.IGNORECASE | re.DOTALL)
_END = r"\s*(?:\n\s*\n|\n\s*please|\n\s*assistant|$)"
_TWO_ANSWERS = [
    re.compile(
        r"(?:answer|response)\s*1\s*[:：]\s*(.+?)\s*\n\s*(?:answer|response)\s*2\s*[:：]\s*(.+?)" + _END,
        re.IGNORECASE | re.DOTALL,
    ),
    re.compile(
        r"the\s+first\s+response\s*[:：]\s*\[(.+?)\]\s*\n\s*the\s+second\s+response\s*[:：]\s*\[(.+?)\]",
        re.IGNORECASE | re.DOTALL,
    ),
    re.compile(
        r"the\s+first\s+response\s*[:：]\s*(.+?)\s*\n\s*the\s+second\s+response\s*[:：]\s*(.+?)" + _END,
        re.IGNORECASE | re.DOTALL,
    ),
]
_ONE_ANSWER = [
    re.compile(r"(?:answer|response)\s*[:：]\s*\[(.+?)\]", re.IGNORECASE | re.DOTALL),
    re.compile(r"(?:answer|response)\s*[:：]\s*(.+?)" + _END, re.IGNORECASE | re.DOTALL),
]
_SCALE = re.compile(r"(?:from|between|scale\s+of|range\s+of)?\s*\b(0|1)\s*(?:-|–|to)\s*(5|10|100)\b", re.IGNORECASE)
_MEDIA_TOKEN = re.compile(r"<(?:image|video)>\s*")


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


def _turns(record: dict[str, Any]) -> tuple[str, str]:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise Unconvertible("no 'conversations' list")
    human = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
    answer = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
    if not isinstance(human, str) or not isinstance(answer, str):
        raise Unconvertible("conversations lack a human turn and a gpt turn")
    return _MEDIA_TOKEN.sub("", human).strip(), answer.strip()


def _read(media_root: Path, relative: str) -> bytes:
    path = media_root / relative
    if not path.is_file():
        raise Unconvertible(f"media file not found: {relative}")
    return path.read_bytes()


def _ext(relative: str, allowed: tuple[str, ...]) -> str:
    ext = relative.rsplit(".", 1)[-1].lower()
    if ext not in allowed:
        raise Unconvertible(f"unsupported media extension: {relative}")
    return ext


def _frames_to_video(media_root: Path, paths: list[str], fps: float) -> EncodedMedia:
    frames = []
    for relative in paths:
        try:
            with Image.open(media_root / relative) as image:
                frames.append(image.convert("RGB"))
        except FileNotFoundError as error:
            raise Unconvertible(f"media file not found: {relative}") from error
        except Exception as error:  # PIL's damaged-file errors have no common base
            raise Unconvertible(f"corrupt frame image: {relative} ({error})") from error
    width, height = frames[0].size
    width, height = width - width % 2, height - height % 2
    stack = np.stack(
        [np.asarray(f.resize((width, height)) if f.size != (width, height) else f)[:height, :width] for f in frames]
    )
    return encode_video(np.ascontiguousarray(stack), fps=fps)


def _media(record: dict[str, Any], media_root: Path, frames_per_video: int, fps: float) -> list[EncodedMedia]:
    """The record's media in order, as images or videos."""
    if "video" in record:
        videos = record["video"] if isinstance(record["video"], list) else [record["video"]]
        return [EncodedMedia("video", _ext(v, VIDEO_EXTENSIONS), _read(media_root, v)) for v in videos]
    images = record.get("images", record.get("image"))
    if images is None:
        raise Unconvertible("record has no 'image', 'images' or 'video'")
    images = images if isinstance(images, list) else [images]
    if len(images) <= 2:
        return [EncodedMedia("image", _ext(i, IMAGE_EXTENSIONS), _read(media_root, i)) for i in images]
    if len(images) % frames_per_video:
        raise Unconvertible(f"{len(images)} frame images is not a multiple of frames_per_video={frames_per_video}")
    return [
        _frames_to_video(media_root, images[start : start + frames_per_video], fps)
        for start in range(0, len(images), frames_per_video)
    ]


def _caption(instruction: str) -> str:
    for pattern in _CAPTION:
        match = pattern.search(instruction)
        if match and match.group(1).strip():
            return match.group(1).strip()
    raise Unconvertible("cannot find the caption in the instruction")


def _question(instruction: str) -> str:
    match = _QUESTION.search(instruction)
    if not match:
        raise Unconvertible("cannot find the question in the instruction")
    return match.group(1).strip()


def _answers(instruction: str, count: int) -> list[str]:
    if count == 2:
        for pattern in _TWO_ANSWERS:
            match = pattern.search(instruction)
            if match:
                return [match.group(1).strip(), match.group(2).strip()]
        raise Unconvertible("cannot find the two answers in the instruction")
    tail = instruction[_QUESTION.search(instruction).end() :]
    for pattern in _ONE_ANSWER:
        match = pattern.search(tail)
        if match:
            return [match.group(1).strip()]
    raise Unconvertible("cannot find the answer in the instruction")


def _point_label(instruction: str, answer: str, default_scale: tuple[float, float] | None) -> PointLabel:
    score = parse_score(answer).score
    if score is None:
        raise Unconvertible("answer has no 'Final Score: X'")
    scale = _SCALE.search(instruction)
    low, high = (float(scale.group(1)), float(scale.group(2))) if scale else (default_scale or (None, None))
    if low is None:
        raise Unconvertible("instruction names no score scale (pass --point-scale LOW,HIGH)")
    try:
        return PointLabel(score, low, high)
    except RecordError as error:
        raise Unconvertible(f"label outside its scale: {error}") from error


def convert_record(
    record: dict[str, Any],
    record_id: str,
    media_root: Path,
    *,
    source: str,
    frames_per_video: int = 8,
    fps: float = 1.0,
    default_scale: tuple[float, float] | None = None,
) -> PreferenceRecord:
    instruction, answer = _turns(record)
    media = _media(record, media_root, frames_per_video, fps)
    kind = media[0].kind
    is_point = parse_score(answer).valid
    pair = parse_pair(answer)
    if not is_point and not pair.valid:
        raise Unconvertible("answer is neither a pairwise verdict nor 'Final Score: X'")
    mentions_answers = bool(re.search(r"(?:answer|response)\s*1|the\s+first\s+response", instruction, re.IGNORECASE))
    understanding = bool(_QUESTION.search(instruction)) and len(media) == 1 and (is_point or mentions_answers)
    if understanding:
        task, prompt, context = f"{kind}_understanding", _question(instruction), media[0]
        candidates = _answers(instruction, 1 if is_point else 2)
    else:
        task, prompt, context, candidates = f"{kind}_generation", _caption(instruction), None, media
    expected = 1 if is_point else 2
    if len(candidates) != expected:
        raise Unconvertible(
            f"{'point' if is_point else 'pair'} judgment for {task} needs {expected} candidates, "
            f"record has {len(candidates)}"
        )
    label = _point_label(instruction, answer, default_scale) if is_point else pair.verdict
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
            meta={"instruction": instruction, "official_id": record.get("id")},
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
    frames_per_video: int = 8,
    fps: float = 1.0,
    default_scale: tuple[float, float] | None = None,
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
                    frames_per_video=frames_per_video,
                    fps=fps,
                    default_scale=default_scale,
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
    parser.add_argument("--frames-per-video", type=int, default=8)
    parser.add_argument("--fps", type=float, default=1.0, help="frame rate given to videos made from frame lists")
    parser.add_argument("--point-scale", default=None, help="LOW,HIGH for point records whose text names no scale")
    parser.add_argument("--shard-size", type=int, default=1000)
    args = parser.parse_args(argv)
    scale = tuple(float(x) for x in args.point_scale.split(",")) if args.point_scale else None
    report = convert_file(
        args.json,
        args.media_root,
        args.out,
        source=args.source,
        frames_per_video=args.frames_per_video,
        fps=args.fps,
        default_scale=scale,
        shard_size=args.shard_size,
    )
    print(report.summary())
    for failure in report.failures[:20]:
        print(f"  record {failure['index']} ({failure['id']}): {failure['reason']}")
    if len(report.failures) > 20:
        print(f"  ... all {len(report.failures)} in {args.out / 'conversion_report.json'}")


if __name__ == "__main__":
    main()
