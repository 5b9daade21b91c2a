"""Reading a judge's answer text: pairwise verdicts and pointwise scores.

Every parse returns an explicit result; text that is not a clear verdict is *invalid*, never a
default winner. Accepted forms include the official checkpoints' `Image 1 is better.`,
`Video 2 is better than Video 1.`, `Overall Judgment: Answer 2 is better than Answer 1.`,
`Both images are equally good.`, `Final Score: 7.5`, and any of these inside
`<think>...</think><answer>...</answer>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["first", "second", "tie"]

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_OVERALL = re.compile(r"overall\s+judg(?:e)?ment\s*[:：]", re.IGNORECASE)
_WINNER = re.compile(
    r"\b(?:image|video|answer|response)\s*([12])\s+is\s+(?:the\s+)?(?:better|superior|preferred|best)\b",
    re.IGNORECASE,
)
_TIE = re.compile(
    r"\b(?:both\s+(?:images|videos|answers|responses)\s+are\s+equally\s+(?:good|bad|matched)"
    r"|equally\s+good|it'?s\s+a\s+tie|\btie\b)",
    re.IGNORECASE,
)
_SCORE = re.compile(r"final\s+score\s*[:：]?\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class PairJudgment:
    verdict: Verdict | None  # None: the text holds no clear verdict

    @property
    def valid(self) -> bool:
        return self.verdict is not None


@dataclass(frozen=True)
class PointJudgment:
    score: float | None  # None: the text holds no score

    @property
    def valid(self) -> bool:
        return self.score is not None


def _verdict_region(text: str) -> str:
    answers = _ANSWER_BLOCK.findall(text)
    if answers:
        return answers[-1]
    text = _THINK_BLOCK.sub(" ", text)
    overall = list(_OVERALL.finditer(text))
    return text[overall[-1].end() :] if overall else text


def verdict_start(text: str) -> int | None:
    """Where the verdict of a reasoning judge's answer begins: after the last `<answer>` (UnifiedReward-Think),
    else after the last line break of the text; None when the text has neither (no verdict line was reached)."""
    answer = text.lower().rfind("<answer>")
    if answer >= 0:
        return answer + len("<answer>")
    line_break = text.rstrip().rfind("\n")
    return None if line_break < 0 else line_break + 1


def parse_pair(text: str) -> PairJudgment:
    """The verdict of a pairwise answer; conflicting verdicts (e.g. both `Image 1 is better` and
    `Image 2 is better` outside an Overall Judgment) are invalid."""
    region = _verdict_region(text)
    found: set[Verdict] = {"first" if m.group(1) == "1" else "second" for m in _WINNER.finditer(region)}
    if _TIE.search(region):
        found.add("tie")
    return PairJudgment(found.pop() if len(found) == 1 else None)


def parse_score(text: str) -> PointJudgment:
    """The number after the last `Final Score:`, decimals kept."""
    matches = _SCORE.findall(_verdict_region(text)) or _SCORE.findall(text)
    return PointJudgment(float(matches[-1]) if matches else None)
