"""The judges behind one interface: the random judge is at chance and repeats from its seed; load_judge gives
each kind from one config value."""

import numpy as np
import pytest

from unified_reward.judging.loading import RandomJudge, load_judge
from unified_reward.judging.queries import JudgeQuery


def _queries(mode: str, count: int):
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import decode_sample, encode_record
    from unified_reward.synthetic.world import WorldConfig, make_record

    sampling = VideoSampling(num_frames=4)
    records = [
        decode_sample(encode_record(make_record(WorldConfig(seed=5), "test", "image_understanding", mode, i)), sampling)
        for i in range(count)
    ]
    return records, [JudgeQuery.of(r) for r in records]


def test_the_random_judge_is_at_chance_and_repeats_from_its_seed():
    records, queries = _queries("pair", 400)
    verdicts = RandomJudge(seed=3).pair_probabilities(queries).argmax(-1).tolist()
    accuracy = np.mean([["first", "second"][v] == r.label for v, r in zip(verdicts, records, strict=True)])
    assert abs(accuracy - 0.5) < 0.08  # 400 fair coins: +-0.025 standard error
    assert (
        RandomJudge(seed=3).pair_probabilities(queries).tolist()
        == RandomJudge(seed=3).pair_probabilities(queries).tolist()
    )
    assert (
        RandomJudge(seed=4).pair_probabilities(queries).tolist()
        != RandomJudge(seed=3).pair_probabilities(queries).tolist()
    )
    _, points = _queries("point", 300)
    scores = RandomJudge(seed=3).expected_scores(points)
    assert float(scores.min()) >= 1.0 and float(scores.max()) <= 5.0 and abs(float(scores.mean()) - 3.0) < 0.25


def test_load_judge_gives_each_kind_from_one_value(tmp_path, tiny_qwen):
    from unified_reward.judging.generative import Judge
    from unified_reward.synthetic.oracle_judge import OracleJudge

    named = {"oracle": "unified_reward.synthetic.oracle_judge.OracleJudge"}  # configs/named_judges/synthetic.yaml
    assert isinstance(load_judge("oracle", named=named), OracleJudge)
    assert isinstance(load_judge("random", seed=2), RandomJudge) and load_judge("random", seed=2).seed == 2
    model, processor = tiny_qwen
    Judge(model, processor).save_pretrained(tmp_path / "judge")
    assert isinstance(load_judge(str(tmp_path / "judge")), Judge)
    with pytest.raises(Exception, match="no such local folder"):
        load_judge(str(tmp_path / "nothing" / "here"))
