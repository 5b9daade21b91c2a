import math

import pytest
import torch

from unified_reward.judging.group_rewards import GroupRewards, group_pairs, win_rates
from unified_reward.judging.loading import RandomJudge
from unified_reward.judging.queries import JudgeReadings, Judgment
from unified_reward.synthetic.oracle_judge import OracleJudge


class FirstPositionJudge(JudgeReadings):
    """A judge with total position bias: whatever the pair, the first candidate wins."""

    def judge(self, queries, *, with_text=False):
        return [Judgment({"first": 1.0, "second": 0.0, "tie": 0.0}) for _ in queries]


class SilentOnJudge(JudgeReadings):
    """Prefers the longer answer, and gives no reading at all when a candidate says `silent`."""

    def judge(self, queries, *, with_text=False):
        out = []
        for q in queries:
            if any("silent" in c for c in q.candidates):
                out.append(Judgment({}, finished=False, scale=q.scale if q.mode == "point" else None))
            elif q.mode == "point":
                out.append(Judgment({float(len(q.candidates[0])): 1.0}, scale=q.scale))
            else:
                a, b = map(len, q.candidates)
                out.append(Judgment({"first": float(a > b), "second": float(b > a), "tie": float(a == b)}))
        return out


def test_win_rates_count_verdicts_with_ties_half():
    # 3 samples; pairs (0,1): first wins, (0,2): tie, (1,2): second wins
    rows = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]])
    wins, expected = win_rates(3, rows)
    assert wins == [(1 + 0.5) / 2, (0 + 0) / 2, (0.5 + 1) / 2]
    hand = [(0.7 + 0.05) + (0.3 + 0.2), (0.2 + 0.05) + (0.1 + 0.05), (0.3 + 0.2) + (0.8 + 0.05)]
    assert all(math.isclose(e, h / 2, rel_tol=1e-6) for e, h in zip(expected, hand, strict=True))
    assert group_pairs(3) == [(0, 1), (0, 2), (1, 2)]


def test_a_pair_without_reading_is_a_tie_or_leaves_the_win_rate():
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    valid = torch.tensor([True, False, True])
    assert win_rates(3, rows, valid, invalid="tie")[0] == [(1 + 0.5) / 2, 0.0, (0.5 + 1) / 2]
    assert win_rates(3, rows, valid, invalid="drop")[0] == [1.0, 0.0, 1.0]
    dropped = win_rates(2, torch.zeros(1, 3), torch.tensor([False]), invalid="drop")[0]
    assert all(math.isnan(w) for w in dropped)


def test_the_oracle_rewards_right_answers_over_wrong_ones(understanding_pairs):
    record = understanding_pairs[0]  # its chosen answer is right more often than its rejected one
    group = [record.chosen, record.rejected, record.chosen, record.rejected]
    for reward in ("win_rate", "score"):
        reading = GroupRewards(OracleJudge(), reward=reward)(
            "image_understanding", [record.prompt], [record.context], [group]
        )
        rewards = reading.rewards[0]
        assert rewards[0] == rewards[2] > rewards[1] == rewards[3], (reward, rewards)
        assert reading.metrics()["judge/invalid_rate"] == 0.0
    both = GroupRewards(OracleJudge())("image_understanding", [record.prompt], [record.context], [group]).metrics()
    assert both["judge/swap_agreement"] == 1.0 and both["judge/position_bias_rate"] == 0.0
    assert both["judge/calls"] == 12  # 6 pairs, both orders
    assert both["reward/mean"] == pytest.approx(0.5) and both["reward/spread"] > 0.3  # win rates 5/6, 1/6, 5/6, 1/6


def test_position_bias_is_measured_and_cancelled_in_both_orders():
    groups = [["a", "bb", "ccc"]] * 2
    reading = GroupRewards(FirstPositionJudge(), orders="both")("image_understanding", ["q"] * 2, [None] * 2, groups)
    metrics = reading.metrics()
    assert metrics["judge/position_bias_rate"] == 1.0 and metrics["judge/swap_agreement"] == 0.0
    assert metrics["judge/first_rate"] == 1.0
    assert reading.rewards.tolist() == [[0.5] * 3] * 2  # no sample is preferred: every pair a tie
    assert metrics["reward/flat_groups"] == 1.0
    fixed = GroupRewards(FirstPositionJudge(), orders="fixed")("image_understanding", ["q"], [None], groups[:1])
    assert fixed.rewards.tolist() == [[1.0, 0.5, 0.0]]  # one order: the bias becomes the reward


def test_random_orders_are_seeded_by_step():
    groups = [[str(i) * (i + 1) for i in range(4)]] * 3
    rewards = GroupRewards(FirstPositionJudge(), orders="random", seed=5)
    first = rewards("image_understanding", ["q"] * 3, [None] * 3, groups, step=1).rewards
    again = rewards("image_understanding", ["q"] * 3, [None] * 3, groups, step=1).rewards
    other = rewards("image_understanding", ["q"] * 3, [None] * 3, groups, step=2).rewards
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert rewards.calls_per_group(4) == 6 and GroupRewards(RandomJudge(), reward="score").calls_per_group(4) == 4


@pytest.mark.parametrize("reward", ["win_rate", "score"])
def test_invalid_judgments_follow_the_policy_never_a_default(reward):
    groups = [["a", "bbb", "silent", "cc"]]
    tie = GroupRewards(SilentOnJudge(), reward=reward, invalid="tie")("image_understanding", ["q"], [None], groups)
    drop = GroupRewards(SilentOnJudge(), reward=reward, invalid="drop")("image_understanding", ["q"], [None], groups)
    assert tie.metrics()["judge/invalid_rate"] > 0
    assert math.isnan(drop.rewards[0, 2]) and drop.metrics()["reward/dropped"] == 0.25
    if reward == "score":
        assert drop.rewards[0, [0, 1, 3]].tolist() == [1.0, 3.0, 2.0]
        assert tie.rewards[0].tolist() == [1.0, 3.0, 2.0, 2.0]  # the group's mean: advantage 0
    else:
        # "silent" ties with everyone (1/2 each) or leaves the others' win rates
        assert tie.rewards[0].tolist() == [0.5 / 3, (2 + 0.5) / 3, 0.5, (1 + 0.5) / 3]
        assert drop.rewards[0, [0, 1, 3]].tolist() == [0.0, 1.0, 0.5]
