"""The oracle judge agrees with every label of the synthetic world, pair and point, on all four tasks."""

import pytest

from unified_reward.data.media import VideoSampling
from unified_reward.data.shards import decode_sample, encode_record
from unified_reward.data.tasks import TASKS
from unified_reward.judging.queries import VERDICTS, JudgeQuery
from unified_reward.synthetic.oracle_judge import OracleJudge
from unified_reward.synthetic.world import WorldConfig, make_record


@pytest.mark.parametrize("task", TASKS)
def test_the_oracle_judge_agrees_with_every_world_label(task):
    sampling = VideoSampling(num_frames=8)
    judge = OracleJudge()
    for mode in ("pair", "point"):
        records = [
            decode_sample(encode_record(make_record(WorldConfig(seed=4), "test", task, mode, i)), sampling)
            for i in range(12)
        ]
        queries = [JudgeQuery.of(r) for r in records]
        if mode == "pair":
            verdicts = [VERDICTS[i] for i in judge.pair_probabilities(queries).argmax(-1).tolist()]
            assert verdicts == [r.label for r in records]
        else:
            assert judge.expected_scores(queries).tolist() == pytest.approx([r.label.score for r in records])
            on_ten = judge.score(
                task,
                [q.prompt for q in queries],
                [q.candidates[0] for q in queries],
                [q.context for q in queries],
                scale=(1, 10),
            )
            assert on_ten.tolist() == pytest.approx([1 + (r.label.score - 1) * 9 / 4 for r in records])
