"""Reading a judge's answer text: pairwise verdicts and pointwise scores.

Every parse returns an explicit result; text that is not a clear verdict is *invalid*, never a default winner,
and a score outside the scale that was asked for is invalid too. Forms read (README, "Answer forms"):

- sentences naming the winner: `Image 1 is better.`, `Video 2 is better than Video 1.`, `Response B is better
  than response A`, graded (`Image 1 is slightly better than Image 2`), with markdown emphasis (`**Image 1** is
  better`), or naming the loser (`Image 2 is worse than Image 1`);
- LLaVA-Critic's bracketed verdicts: `The better response: [2]`, `The better answer: [first]`, `[[A>B]]`;
- ties: `Both images are equally good.`, `Two responses are equally good.`, `[[A=B]]`;
- where the verdict is: the last `<answer>...</answer>` (UnifiedReward-Think); else the first sentence after the
  last `Overall Judgment:` (as the official reader takes it); else the whole text, where per-aspect ties before
  one final winner give that winner, and two different winners are a contradiction (invalid);
- scores: the number after the last `Final Score:` (`Final Score: 85.`, `**Final Score:** 4`, `7.5`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["first", "second", "tie"]

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_OVERALL = re.compile(r"overall\s+judg(?:e)?ment\s*[*_]*\s*[:：]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?!\d)|\n\s*\n")  # a period not inside a decimal number

_UNIT = r"(?:image|video|answer|response|assistant|output|candidate)"
_ID = r"([12ab])\b"  # 1/2, or A/B as LLaVA-Critic's and MT-bench-style prompts name them
_EM = r"[*_]{0,2}"  # markdown emphasis around a name or a whole verdict
_GRADE = (
    r"(?:(?:slightly|much|significantly|somewhat|marginally|clearly|far|considerably|overall|a\s+(?:bit|little))\s+)?"
)
_WINNER = re.compile(
    rf"\b{_UNIT}\s*{_EM}\s*{_ID}\s*{_EM}\s+is\s+(?:the\s+)?{_GRADE}{_EM}(?:better|superior|preferred|best)\b",
    re.IGNORECASE,
)
_LOSER = re.compile(
    rf"\b{_UNIT}\s*{_EM}\s*{_ID}\s*{_EM}\s+is\s+{_GRADE}worse\s+than\s+(?:{_UNIT}\s*)?{_EM}\s*{_ID}", re.IGNORECASE
)
_BRACKET = re.compile(
    rf"\bthe\s+better\s+(?:response|answer|one|image|video|output)\s*(?:is\s*)?[:：]?\s*{_EM}\s*"
    r"\[\s*(1|2|first|second|a|b)\s*\]",
    re.IGNORECASE,
)
_DOUBLE_BRACKET = re.compile(r"\[\[\s*([ab])\s*(>>|>|=|<<|<)\s*([ab])\s*\]\]", re.IGNORECASE)
_TIE = re.compile(
    r"\b(?:(?:both|two)\s+(?:images|videos|answers|responses|outputs)\s+are\s+equally\s+(?:good|bad|matched)"
    r"|equally\s+good|it'?s\s+a\s+tie|\btie\b)",
    re.IGNORECASE,
)
_SCORE = re.compile(r"final\s+score\s*[*_]*\s*[:：]?\s*[*_]*\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_FIRST = {"1": "first", "a": "first", "first": "first", "2": "second", "b": "second", "second": "second"}


@dataclass(frozen=True)
class PairJudgment:
    verdict: Verdict | None  # None: the text holds no clear verdict

    @property
    def valid(self) -> bool:
        return self.verdict is not None


@dataclass(frozen=True)
class PointJudgment:
    score: float | None  # None: the text holds no score, or one outside the scale asked for
    out_of_scale: bool = False  # a number was stated, outside the scale (counted as invalid)

    @property
    def valid(self) -> bool:
        return self.score is not None


def _verdict_region(text: str) -> str:
    """Where the verdict is to be read: the last answer block, else the first sentence after the last Overall
    Judgment, else the whole text without its thinking."""
    answers = _ANSWER_BLOCK.findall(text)
    if answers:
        return answers[-1]
    text = _THINK_BLOCK.sub(" ", text)
    overall = list(_OVERALL.finditer(text))
    if not overall:
        return text
    after = text[overall[-1].end() :].lstrip(" \t\n*_")
    end = _SENTENCE_END.search(after)
    return after[: end.start()] if end else after


def _mentions(region: str) -> list[tuple[int, Verdict]]:
    """Every verdict stated in `region`, with where it is stated."""
    found: list[tuple[int, Verdict]] = []
    found += [(m.start(), _FIRST[m.group(1).lower()]) for m in _WINNER.finditer(region)]
    found += [
        (m.start(), "second" if _FIRST[m.group(1).lower()] == "first" else "first") for m in _LOSER.finditer(region)
    ]
    found += [(m.start(), _FIRST[m.group(1).lower()]) for m in _BRACKET.finditer(region)]
    for m in _DOUBLE_BRACKET.finditer(region):
        left, relation, right = m.group(1).lower(), m.group(2), m.group(3).lower()
        if relation == "=" or left == right:
            found.append((m.start(), "tie"))
        else:
            better = left if relation.startswith(">") else right
            found.append((m.start(), _FIRST[better]))
    found += [(m.start(), "tie") for m in _TIE.finditer(region)]
    return sorted(found)


def verdict_start(text: str) -> int | None:
    """Where the verdict of a reasoning judge's answer begins: after the last `<answer>` (UnifiedReward-Think),
    else after the last line break of the text; None when the text has neither (no verdict line was reached)."""
    answer = text.lower().rfind("<answer>")
    if answer >= 0:
        return answer + len("<answer>")
    line_break = text.rstrip().rfind("\n")
    return None if line_break < 0 else line_break + 1


def parse_pair(text: str) -> PairJudgment:
    """The verdict of a pairwise answer (module docstring for the forms and where they are read)."""
    region = _verdict_region(text)
    mentions = _mentions(region)
    verdicts = {verdict for _, verdict in mentions}
    if len(verdicts) == 1:
        return PairJudgment(verdicts.pop())
    winners = verdicts - {"tie"}
    if len(winners) == 1 and mentions[-1][1] != "tie":  # ties on some aspects, then one final winner
        return PairJudgment(winners.pop())
    return PairJudgment(None)


def parse_score(text: str, scale: tuple[float, float] | None = None) -> PointJudgment:
    """The number after the last `Final Score:`, decimals kept; invalid when it lies outside `scale` (low, high),
    the scale the judge was asked to answer on."""
    region = _verdict_region(text)
    matches = _SCORE.findall(region) or _SCORE.findall(text)
    if not matches:
        return PointJudgment(None)
    score = float(matches[-1])
    if scale is not None and not scale[0] <= score <= scale[1]:
        return PointJudgment(None, out_of_scale=True)
    return PointJudgment(score)


_TWO_SCORES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[ ,/]\s*(\d+(?:\.\d+)?)\s*$")


def parse_two_scores(text: str) -> tuple[float, float] | None:
    """The two scores on the first line of a LLaVA-bench-style pairwise answer (`10 9\\nAssistant 1 ...`: the
    first and second response's scores), or None."""
    first_line = text.strip().split("\n", 1)[0]
    match = _TWO_SCORES.match(first_line)
    return (float(match.group(1)), float(match.group(2))) if match else None
