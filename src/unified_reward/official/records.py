"""What an official record's texts say: its turns, caption, question, answers, score scale and labels
(`official.convert` puts them together). `Unconvertible` carries the reason a record cannot be converted."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from unified_reward.data.schema import PointLabel
from unified_reward.prompts.parsing import parse_score


class Unconvertible(ValueError):
    """A record that cannot be converted; the message is the reason reported to the user."""


def _bracketed_or_line(label: str) -> re.Pattern:
    """`<label>: [text, possibly over several lines]` or `<label>: text to the end of its line`."""
    return re.compile(
        rf"{label}\s*[:：]\s*(?:\[(.+?)\](?=\s*(?:\n|$))|([^\n\[]+?)\s*(?:\n|$))", re.IGNORECASE | re.DOTALL
    )


_CAPTION = [_bracketed_or_line(r"text\s+(?:caption|prompt)"), _bracketed_or_line(r"(?:caption|prompt)")]
_QUOTED_PROMPT = re.compile(r'text\s+prompt\s+is\s+"(.+?)",?\s*\n', re.IGNORECASE | re.DOTALL)  # VideoFeedback
QUESTION = re.compile(
    r"(?:question\s*[:：]\s*(?:\[(.+?)\](?=\s*\n)|(.+?)\s*\n(?=[^\n]*(?:answer|response|caption)\b))"
    r"|\[question\]\s*\n(.+?)\n\s*\n)",
    re.IGNORECASE | re.DOTALL,
)
_END = r"\s*(?:\n\s*\n|\n\s*please|\n\s*assistant|$)"


def _two_labelled(first: str, second: str) -> list[re.Pattern]:
    """`<first>: [...]` then `<second>: [...]` (brackets may hold several lines), and the same without brackets."""
    flags = re.IGNORECASE | re.DOTALL
    return [
        re.compile(rf"{first}\s*[:：]\s*\[(.+?)\]\s*\n\s*{second}\s*[:：]\s*\[(.+?)\](?=\s*(?:\n|$))", flags),
        re.compile(rf"{first}\s*[:：]\s*(.+?)\s*\n\s*{second}\s*[:：]\s*(.+?)" + _END, flags),
    ]


_TWO_ANSWERS = [
    *_two_labelled(r"(?:answer|response)\s*[1a]", r"(?:answer|response)\s*[2b]"),
    *_two_labelled(r"the\s+first\s+response", r"the\s+second\s+response"),
    re.compile(  # LLaVA-bench reviews
        r"\[assistant\s*1\]\s*\n(.+?)\n\s*\[end\s+of\s+assistant\s*1\]\s*\[assistant\s*2\]\s*\n(.+?)\n\s*"
        r"\[end\s+of\s+assistant\s*2\]",
        re.IGNORECASE | re.DOTALL,
    ),
    re.compile(  # MT-bench-style reviews
        r"\[the\s+start\s+of\s+assistant\s*a?1?'s\s+answer\]\s*(.+?)\s*\[the\s+end\s+of\s+assistant\s*a?1?'s\s+answer\]"
        r"\s*\[the\s+start\s+of\s+assistant\s*b?2?'s\s+answer\]\s*(.+?)\s*\[the\s+end\s+of\s+assistant\s*b?2?'s\s+answer\]",
        re.IGNORECASE | re.DOTALL,
    ),
]
_ONE_ANSWER = [
    re.compile(r"(?:answer|response)\s*[:：]\s*\[(.+?)\](?=\s*(?:\n|$))", re.IGNORECASE | re.DOTALL),
    re.compile(r"(?:answer|response)\s*[:：]\s*(.+?)" + _END, re.IGNORECASE | re.DOTALL),
]
CAPTION_RATING = re.compile(r"rate\s+(?:for\s+)?this\s+text\s+caption|text\s+caption\s+in\s+terms\s+of", re.IGNORECASE)
_SCALE = re.compile(r"(?:from|between|scale\s+of|range\s+of)?\s*\b(0|1)\s*(?:-|–|to)\s*(5|10|100)\b", re.IGNORECASE)
_MEDIA_TOKEN = re.compile(r"<(?:image|video)>\s*")
# UnifiedReward-Edit's pairwise prompt: the source image, then the two edits, then the text ending in the instruction
EDIT_JUDGMENT = re.compile(r"source\s+image\s*\(before\s+editing\)", re.IGNORECASE)
EDIT_INSTRUCTION = re.compile(r"text\s+instruction\s*-\s*(.+?)\s*$", re.IGNORECASE | re.DOTALL)
TWO_VIDEOS = re.compile(r"\btwo\s+(?:generated\s+)?videos\b|\bvideo\s*2\b|frames\s+of\s+two", re.IGNORECASE)
# VideoFeedback (TIGER-Lab): five dimensions scored 1-4 and no overall score
VIDEOFEEDBACK_DIMENSIONS = (
    "visual quality",
    "temporal consistency",
    "dynamic degree",
    "text-to-video alignment",
    "factual consistency",
)
VIDEOFEEDBACK_SCALE = (1.0, 4.0)
_DIMENSION = re.compile(
    rf"^\s*({'|'.join(re.escape(d) for d in VIDEOFEEDBACK_DIMENSIONS)})\s*[:：]\s*(\d+(?:\.\d+)?)", re.I | re.M
)


def record_turns(record: dict[str, Any]) -> tuple[str, str]:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise Unconvertible("no 'conversations' list")
    human = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
    answer = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
    if not isinstance(human, str) or not isinstance(answer, str):
        raise Unconvertible("conversations lack a human turn and a gpt turn")
    return _MEDIA_TOKEN.sub("", human).strip(), answer.strip()


def _first_group(match: re.Match) -> str:
    return next(g for g in match.groups() if g is not None).strip()


def find_caption(instruction: str, record: dict[str, Any]) -> str:
    if isinstance(record.get("text prompt"), str) and record["text prompt"].strip():  # VideoFeedback's field
        return record["text prompt"].strip()
    quoted = _QUOTED_PROMPT.search(instruction)
    if quoted:
        return quoted.group(1).strip()
    for pattern in _CAPTION:
        match = pattern.search(instruction)
        if match and _first_group(match):
            return _first_group(match)
    raise Unconvertible("cannot find the caption in the instruction")


def find_question(instruction: str) -> str:
    match = QUESTION.search(instruction)
    if not match:
        raise Unconvertible("cannot find the question in the instruction")
    return _first_group(match)


def find_answers(instruction: str, count: int) -> list[str]:
    if count == 2:
        for pattern in _TWO_ANSWERS:
            match = pattern.search(instruction)
            if match:
                return [match.group(1).strip(), match.group(2).strip()]
        raise Unconvertible("cannot find the two answers in the instruction")
    tail = instruction[QUESTION.search(instruction).end() :]
    for pattern in _ONE_ANSWER:
        match = pattern.search(tail)
        if match:
            return [match.group(1).strip()]
    raise Unconvertible("cannot find the answer in the instruction")


def _scale(instruction: str, default_scale: tuple[float, float] | None) -> tuple[float, float]:
    found = _SCALE.search(instruction)
    if found:
        return float(found.group(1)), float(found.group(2))
    if default_scale is None:
        raise Unconvertible("instruction names no score scale (pass --point-scale LOW,HIGH)")
    return default_scale


def point_label(instruction: str, answer: str, default_scale: tuple[float, float] | None) -> PointLabel:
    scale = _scale(instruction, default_scale)
    judgment = parse_score(answer, scale)
    if judgment.out_of_scale:
        raise Unconvertible(f"label outside its scale: the answer's score is outside {scale[0]:g}-{scale[1]:g}")
    return PointLabel(judgment.score, *scale)


def dimension_scores(record: dict[str, Any], answer: str) -> dict[str, float]:
    """VideoFeedback's per-dimension scores: from the record's fields, else from the answer's lines."""
    fields = {d: float(record[d]) for d in VIDEOFEEDBACK_DIMENSIONS if isinstance(record.get(d), int | float)}
    return fields or {m.group(1).lower(): float(m.group(2)) for m in _DIMENSION.finditer(answer)}


def videofeedback_point_label(dimensions: dict[str, float], rule: str) -> PointLabel:
    if rule == "mean":
        if set(dimensions) != set(VIDEOFEEDBACK_DIMENSIONS):
            missing = sorted(set(VIDEOFEEDBACK_DIMENSIONS) - set(dimensions))
            raise Unconvertible(f"VideoFeedback record lacks dimensions {missing} for the mean label")
        return PointLabel(float(np.mean(list(dimensions.values()))), *VIDEOFEEDBACK_SCALE)
    if rule not in dimensions:
        raise Unconvertible(f"VideoFeedback record has no {rule!r} score (videofeedback_label={rule})")
    return PointLabel(dimensions[rule], *VIDEOFEEDBACK_SCALE)


def two_score_verdict(scores: tuple[float, float]) -> str:
    return "tie" if scores[0] == scores[1] else ("first" if scores[0] > scores[1] else "second")
