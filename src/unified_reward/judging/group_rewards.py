"""A group of samples of one prompt -> one reward per sample, from any judge, with how sure the judge was.

`reward="score"`: the judge's expected score of each sample (pointwise; G judgments per group).
`reward="win_rate"`: Pref-GRPO's win rate of each sample over the others of its group: every pair judged, the
verdict a win (1), a loss (0) or a tie (1/2) for each side, averaged over a sample's opponents. Pairs are read in
`orders`: `both` ((a, b) and (b, a), probabilities averaged before the verdict: position bias cancels; 2 judgments
per pair), `random` (one order drawn per pair, seeded by (seed, step): no systematic position bias, 1 judgment) or
`fixed` ((a, b) with a first).

A judgment that gives no reading (no probability on any verdict or score, or a reasoning judge's rationale that did
not reach its verdict) is never read as a default verdict. `invalid` says what it becomes:
- `tie`: a pair counts as a tie for both samples; a point takes its group's mean (advantage 0);
- `drop`: the pair leaves both samples' win rates; a point, or a sample with no valid pair left, leaves its group
  (reward NaN: no part in the group's mean and std, advantage 0, out of the loss).
Both are counted (`judge/invalid_rate`).

Judged in both orders, `judge/swap_agreement` is the share of pairs whose verdict survives the swap and
`judge/position_bias_rate` the share whose two verdicts name the same position. `reward/spread` is the mean std of
the rewards within a group: a group's mean win rate is 1/2 by construction and says nothing, its spread says how
much the judge separates the samples (`reward/flat_groups`: groups with none, which give no gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from unified_reward.judging.queries import JudgeQuery, JudgeReadings, Judgment, verdict_probabilities
from unified_reward.prompts.templates import DEFAULT_SCALE

REWARDS = ("score", "win_rate")
ORDERS = ("both", "random", "fixed")
INVALID = ("tie", "drop")
FIRST, SECOND, TIE = range(3)


def group_pairs(n: int) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of a group of n: the order every win-rate table is in."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def is_read(judgment: Judgment) -> bool:
    """Whether a judgment gives a reading: some probability on an answer, and a verdict reached."""
    return judgment.finished and sum(judgment.probabilities.values()) > 0


def win_rates(
    n: int, probabilities: torch.Tensor, valid: torch.Tensor | None = None, *, invalid: str = "tie"
) -> tuple[list[float], list[float]]:
    """Each of n samples' win rate (verdicts: win 1, tie 1/2; first and second exactly even is a tie) and expected
    win rate (P(win) + P(tie) / 2) over its opponents, from each pair's (first, second, tie) probabilities in
    `group_pairs(n)` order. A pair not `valid` counts as a tie (`invalid="tie"`) or is left out (`"drop"`; a sample
    with no pair left gets NaN)."""
    valid = torch.ones(len(probabilities), dtype=torch.bool) if valid is None else valid
    wins, expected, counted = [0.0] * n, [0.0] * n, [0] * n
    for (i, j), row, ok in zip(group_pairs(n), probabilities.tolist(), valid.tolist(), strict=True):
        if not ok:
            if invalid == "drop":
                continue
            row = [0.0, 0.0, 1.0]
        # first and second exactly even (a judge that always names one position, read in both orders) is no verdict
        verdict = TIE if row[FIRST] == row[SECOND] else max(range(3), key=row.__getitem__)
        wins[i] += (1.0, 0.0, 0.5)[verdict]
        wins[j] += (0.0, 1.0, 0.5)[verdict]
        expected[i] += row[FIRST] + 0.5 * row[TIE]
        expected[j] += row[SECOND] + 0.5 * row[TIE]
        counted[i] += 1
        counted[j] += 1
    nan = float("nan")
    return (
        [w / c if c else nan for w, c in zip(wins, counted, strict=True)],
        [e / c if c else nan for e, c in zip(expected, counted, strict=True)],
    )


@dataclass
class GroupRewardReading:
    rewards: torch.Tensor  # (groups, G); NaN where a sample left its group (invalid="drop")
    judge_calls: int = 0
    invalid_judgments: int = 0
    both_order_pairs: int = 0  # pairs read validly in both orders
    swap_agreements: int = 0
    position_biased: int = 0
    first_verdicts: int = 0  # pair judgments whose verdict is the first position
    pair_judgments: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        valid = torch.isfinite(self.rewards)
        values = torch.where(valid, self.rewards, torch.zeros_like(self.rewards))
        counts = valid.sum(-1)
        mean = values.sum(-1) / counts.clamp(min=1)
        spread = ((values - mean[:, None]).pow(2) * valid).sum(-1) / (counts - 1).clamp(min=1)
        spread = spread.sqrt()
        out = {
            "reward/mean": float(values.sum() / valid.sum().clamp(min=1)),
            "reward/spread": float(spread.mean()),
            "reward/flat_groups": float((spread < 1e-6).float().mean()),
            "reward/dropped": float((~valid).float().mean()),
            "judge/calls": float(self.judge_calls),
            "judge/invalid_rate": self.invalid_judgments / max(self.judge_calls, 1),
        }
        if self.pair_judgments:
            out["judge/first_rate"] = self.first_verdicts / self.pair_judgments
        if self.both_order_pairs:
            out["judge/swap_agreement"] = self.swap_agreements / self.both_order_pairs
            out["judge/position_bias_rate"] = self.position_biased / self.both_order_pairs
        return out | self.extra


class GroupRewards:
    """`rewards = GroupRewards(judge, reward="win_rate")(task, prompts, contexts, groups, step=step)`: one judge
    call over all the groups' judgments (a learned judge reads those sharing a prefix once)."""

    def __init__(
        self,
        judge: JudgeReadings,
        *,
        reward: str = "win_rate",
        orders: str = "both",
        invalid: str = "tie",
        scale: Sequence[float] = DEFAULT_SCALE,
        seed: int = 0,
    ):
        for name, value, allowed in (("reward", reward, REWARDS), ("orders", orders, ORDERS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if invalid not in INVALID:
            raise ValueError(f"invalid must be one of {INVALID}, got {invalid!r}")
        self.judge, self.reward, self.orders, self.invalid = judge, reward, orders, invalid
        self.scale, self.seed = tuple(scale), seed

    def calls_per_group(self, group_size: int) -> int:
        if self.reward == "score":
            return group_size
        return len(group_pairs(group_size)) * (2 if self.orders == "both" else 1)

    def __call__(
        self,
        task: str,
        prompts: Sequence[str],
        contexts: Sequence[Any],
        groups: Sequence[Sequence[Any]],
        *,
        step: int = 0,
    ) -> GroupRewardReading:
        sizes = {len(g) for g in groups}
        if len(sizes) != 1 or min(sizes) < 2:
            raise ValueError(f"groups must share one size of at least 2, got sizes {sorted(sizes)}")
        if self.reward == "score":
            return self._scores(task, prompts, contexts, groups)
        return self._win_rates(task, prompts, contexts, groups, step)

    def _scores(self, task, prompts, contexts, groups) -> GroupRewardReading:
        queries = [
            JudgeQuery(task, "point", p, (c,), x, self.scale)
            for p, x, g in zip(prompts, contexts, groups, strict=True)
            for c in g
        ]
        judgments = self.judge.judge(queries)
        read = torch.tensor([is_read(j) and j.expected_score is not None for j in judgments])
        values = torch.tensor(
            [j.expected_score if r else float("nan") for j, r in zip(judgments, read, strict=True)], dtype=torch.float64
        )
        rewards = values.view(len(groups), -1).clone()
        if self.invalid == "tie":  # the group's mean of what was read: advantage 0, the others' unchanged
            read_rows = read.view_as(rewards)
            means = torch.nanmean(rewards, dim=-1, keepdim=True).expand_as(rewards)
            rewards = torch.where(read_rows, rewards, means)
        return GroupRewardReading(rewards, judge_calls=len(queries), invalid_judgments=int((~read).sum()))

    def _orders_of(self, pairs: int, step: int) -> torch.Tensor:
        """(pairs,) True where the pair is asked as (b, a)."""
        if self.orders != "random":
            return torch.zeros(pairs, dtype=torch.bool)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return torch.rand(pairs, generator=generator) < 0.5

    def _win_rates(self, task, prompts, contexts, groups, step) -> GroupRewardReading:
        n = len(groups[0])
        pairs = group_pairs(n)
        swapped = self._orders_of(len(groups) * len(pairs), step).view(len(groups), len(pairs))
        queries = []
        for g, (prompt, context, group) in enumerate(zip(prompts, contexts, groups, strict=True)):
            for k, (i, j) in enumerate(pairs):
                a, b = (group[j], group[i]) if swapped[g, k] else (group[i], group[j])
                queries.append(JudgeQuery(task, "pair", prompt, (a, b), context))
        asked = queries + ([q.swapped() for q in queries] if self.orders == "both" else [])
        judgments = self.judge.judge(asked)
        table = verdict_probabilities(judgments)
        read = torch.tensor([is_read(j) for j in judgments])
        reading = GroupRewardReading(
            torch.empty(0), judge_calls=len(asked), invalid_judgments=int((~read).sum()), pair_judgments=int(read.sum())
        )
        reading.first_verdicts = int((table[read].argmax(-1) == FIRST).sum())
        count = len(queries)
        forward, forward_read = table[:count], read[:count]
        if self.orders == "both":
            back = table[count:][:, [SECOND, FIRST, TIE]]  # in (a, b)'s terms
            back_read = read[count:]
            both = forward_read & back_read
            probabilities = torch.where(
                both[:, None], 0.5 * (forward + back), torch.where(forward_read[:, None], forward, back)
            )
            valid = forward_read | back_read
            agree = forward[both].argmax(-1) == back[both].argmax(-1)
            forward_first = forward[both].argmax(-1) == FIRST
            # the same position wins in both orders: (a, b) says first and (b, a) says first, i.e. back says second
            same_position = (forward_first & (back[both].argmax(-1) == SECOND)) | (
                (forward[both].argmax(-1) == SECOND) & (back[both].argmax(-1) == FIRST)
            )
            reading.both_order_pairs = int(both.sum())
            reading.swap_agreements = int(agree.sum())
            reading.position_biased = int(same_position.sum())
        else:
            probabilities, valid = forward, forward_read
        # back in (group[i], group[j]) terms where the pair was asked swapped
        flat_swapped = swapped.flatten()
        probabilities = torch.where(flat_swapped[:, None], probabilities[:, [SECOND, FIRST, TIE]], probabilities)
        rewards = []
        for g in range(len(groups)):
            rows = slice(g * len(pairs), (g + 1) * len(pairs))
            rates, _ = win_rates(n, probabilities[rows], valid[rows], invalid=self.invalid)
            rewards.append(rates)
        reading.rewards = torch.tensor(rewards, dtype=torch.float64)
        return reading
