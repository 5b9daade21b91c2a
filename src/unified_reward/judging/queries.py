"""What every judge answers, and the interface they all share (`JudgeReadings`): a `JudgeQuery` (one pair or
point to judge) read into a `Judgment` (the probability of each verdict or score), and the pair/score readings
built on `judge`. The learned judge (`generative.Judge`), the random floor (`loading.RandomJudge`) and any named judge
(the synthetic world's oracle) implement it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from unified_reward.data.schema import PAIR_LABELS, PreferenceRecord, stream_name
from unified_reward.prompts.parsing import parse_pair, parse_score
from unified_reward.prompts.templates import DEFAULT_SCALE

VERDICTS = PAIR_LABELS  # what a pair judgment assigns probabilities to: the record schema's pair labels


@dataclass(frozen=True)
class Judgment:
    """One query's reading: the probability of each answer meaning (verdicts or integer scores), and, where the
    judge wrote text (a reasoning judge always does), that text and whether it reached a verdict."""

    probabilities: dict[Any, float]
    text: str | None = None
    finished: bool = True
    scale: tuple[float, float] | None = None  # the point scale asked for (None for pairs)

    @property
    def expected_score(self) -> float | None:
        """The mean score under a point reading's probabilities; None where there is no reading."""
        return sum(score * p for score, p in self.probabilities.items()) if self.probabilities else None

    def parsed(self, mode: str):
        """The verdict (pair) or score (point) the text states; None where the text is invalid or absent, and
        for a score outside the scale that was asked for."""
        if self.text is None:
            return None
        return parse_pair(self.text).verdict if mode == "pair" else parse_score(self.text, self.scale).score


@dataclass(frozen=True)
class JudgeQuery:
    """What the judge is asked: a task, a mode, the prompt, the context (understanding) and candidates."""

    task: str
    mode: str
    prompt: str
    candidates: tuple[Any, ...]
    context: Any = None
    scale: tuple[float, float] = DEFAULT_SCALE

    @classmethod
    def of(cls, record: PreferenceRecord, scale: tuple[float, float] | None = None) -> JudgeQuery:
        scale = scale or record.scale or DEFAULT_SCALE
        return cls(record.task, record.mode, record.prompt, record.candidates, record.context, scale)

    @property
    def stream(self) -> str:
        return stream_name(self.task, self.mode)

    def swapped(self) -> JudgeQuery:
        """The same pair with its candidates in the other order."""
        return replace(self, candidates=self.candidates[::-1])


def verdict_probabilities(judgments: Sequence[Judgment]) -> torch.Tensor:
    """(n, 3) probabilities of first / second / tie of pair judgments."""
    return torch.tensor([[j.probabilities.get(v, 0.0) for v in VERDICTS] for j in judgments])


def average_orders(forward: torch.Tensor, swapped: torch.Tensor) -> torch.Tensor:
    """(n, 3) first / second / tie of pairs judged as (a, b) and as (b, a), averaged in (a, b)'s terms: what
    `both_orders` does everywhere, to cancel position bias."""
    return 0.5 * (forward + swapped[:, [1, 0, 2]])


class JudgeReadings:
    """What every judge answers, from its `judge(queries)` (the learned `Judge`, `judges.RandomJudge`, the
    synthetic world's `OracleJudge`): answer probabilities, P(first / second / tie), expected scores, and the
    `compare` / `score` API. A judge also names the scale it asks a point query on (`asked_scale`)."""

    def judge(self, queries: Sequence[JudgeQuery], *, with_text: bool = False) -> list[Judgment]:
        raise NotImplementedError

    def asked_scale(self, query: JudgeQuery) -> tuple[float, float] | None:
        return query.scale if query.mode == "point" else None

    def answer_probabilities(self, queries: Sequence[JudgeQuery]) -> list[dict[Any, float]]:
        """For each query, the probability of each answer meaning (verdicts, or integer scores)."""
        return [j.probabilities for j in self.judge(queries)]

    def pair_probabilities(self, queries: Sequence[JudgeQuery]) -> torch.Tensor:
        """(n, 3) probabilities of first / second / tie."""
        return verdict_probabilities(self.judge(queries))

    def expected_scores(self, queries: Sequence[JudgeQuery]) -> torch.Tensor:
        """On the scale each query is asked on (`asked_scale`); NaN where that scale cannot be read in one pass."""
        expected = [j.expected_score for j in self.judge(queries)]
        return torch.tensor([float("nan") if e is None else e for e in expected])

    def compare(
        self,
        task: str,
        prompts: Sequence[str],
        first: Sequence[Any],
        second: Sequence[Any],
        contexts: Sequence[Any] | None = None,
        *,
        both_orders: bool = False,
    ) -> torch.Tensor:
        """P(first candidate better) per item, ties counted half; `both_orders` averages the judgments
        of (a, b) and (b, a) to cancel position bias."""
        contexts = contexts if contexts is not None else [None] * len(prompts)
        queries = [
            JudgeQuery(task, "pair", p, (a, b), c) for p, a, b, c in zip(prompts, first, second, contexts, strict=True)
        ]
        probabilities = self.pair_probabilities(queries)
        if both_orders:
            probabilities = average_orders(probabilities, self.pair_probabilities([q.swapped() for q in queries]))
        return probabilities[:, 0] + 0.5 * probabilities[:, 2]

    def score(
        self,
        task: str,
        prompts: Sequence[str],
        candidates: Sequence[Any],
        contexts: Sequence[Any] | None = None,
        *,
        scale: tuple[float, float] = DEFAULT_SCALE,
    ) -> torch.Tensor:
        """The expected score of each candidate under the score-token distribution, on `scale` (or on the
        template's own scale where it names one, as the official templates do)."""
        contexts = contexts if contexts is not None else [None] * len(prompts)
        queries = [
            JudgeQuery(task, "point", p, (x,), c, scale) for p, x, c in zip(prompts, candidates, contexts, strict=True)
        ]
        return self.expected_scores(queries)
