"""The protocol's combination of presentations: with both orders, a judge that follows position alone wins no item
(the reported defect: a disagreement went to "first", and VL-RewardBench's preferred answer is nearly always
first); an exact probability tie between the two answers is a tie, not the first in dict order."""

import pytest

from unified_reward.judging.queries import JudgeReadings, Judgment
from unified_reward.reward_benchmarks.harness import BenchmarkPrediction, JudgeReader, Protocol, combine
from unified_reward.reward_benchmarks.items import BenchmarkItem
from unified_reward.reward_benchmarks.metrics import position_bias


class PositionJudge(JudgeReadings):
    """Prefers whatever is shown first, with probability `lean`, whatever the candidates are."""

    def __init__(self, lean: float):
        self.lean = lean

    def judge(self, queries, *, with_text: bool = False):
        return [Judgment({"first": self.lean, "second": 1 - self.lean, "tie": 0.0}) for _ in queries]


def items(count: int = 20) -> list[BenchmarkItem]:
    return [
        BenchmarkItem(f"item-{i}", "image_understanding", "Which is right?", (f"a{i}", f"b{i}"), "first")
        for i in range(count)
    ]


def judged(judge, protocol: Protocol) -> list[dict]:
    return BenchmarkPrediction(JudgeReader(judge, protocol), protocol).predict_step(items(), 0)


@pytest.mark.parametrize("lean", [0.8, 0.5])
def test_a_judge_that_follows_position_wins_nothing_in_both_orders(lean):
    rows = judged(PositionJudge(lean), Protocol(order="both"))
    assert {r["verdict"] for r in rows} == {"tie"}
    # in the released order alone it would win every item whose preferred answer comes first
    fixed = judged(PositionJudge(0.8), Protocol(order="fixed"))
    assert {r["verdict"] for r in fixed} == {"first"}
    shown = [(p["shown_verdict"], "second" if p["swapped"] else "first") for r in rows for p in r["presentations"]]
    if lean == 0.8:  # what it is: says "first" every time, where the truth is first half the time
        assert position_bias([v for v, _ in shown], [t for _, t in shown]) == 0.5


def test_both_orders_keep_an_agreed_verdict_and_make_a_disagreement_a_tie():
    protocol = Protocol(order="both")

    def shown(verdict, first, second):
        return {"verdict": verdict, "probabilities": {"first": first, "second": second, "tie": 0.0}}

    agreed = [shown("second", 0.3, 0.7), shown("second", 0.2, 0.8)]
    assert combine(agreed, protocol) == ("second", pytest.approx(-0.5))
    # a strong first and a weak second: averaging would say "first"; the orders disagree, so it is a tie
    disagreed = [shown("first", 0.9, 0.1), shown("second", 0.4, 0.6)]
    assert combine(disagreed, protocol)[0] == "tie"
    assert combine([shown(None, 0.0, 0.0), shown("first", 0.9, 0.1)], protocol)[0] == "first"
    assert combine([shown(None, 0.0, 0.0), shown(None, 0.0, 0.0)], protocol)[0] is None


def test_an_exact_probability_tie_is_a_tie():
    rows = judged(PositionJudge(0.5), Protocol(order="fixed"))
    assert {r["verdict"] for r in rows} == {"tie"}
