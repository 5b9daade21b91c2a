import json

import pytest

from unified_reward.data.shards import decode_sample
from unified_reward.synthetic.policy_answer_pairs import OracleRankedAnswers


@pytest.fixture(scope="module")
def answers(tmp_path_factory, tiny_qwen):
    model, processor = tiny_qwen
    source = OracleRankedAnswers(
        tmp_path_factory.mktemp("answers"),
        processor,
        model,
        records_per_stream={"train": 6, "val": 2, "test": 2},
        candidates=3,
        max_new_tokens=6,
    )
    source.prepare()
    return source


def _records(source, split):
    import webdataset as wds

    records = []
    for urls in source.streams(split).values():
        for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
            records.append(decode_sample(sample, None))
    return records


def test_every_question_is_written_once_chosen_scoring_above_rejected(answers):
    summary = json.loads((answers.folder / "summary.json").read_text())
    records = _records(answers, "train")
    assert len(records) == summary["train"]["questions"] - summary["train"]["dropped_no_answer"] == 6
    assert summary["train"]["pairs"] + summary["train"]["tied"] == len(records)
    for record in records:
        scores, texts = record.meta["scores"], record.meta["answers"]
        assert len(scores) == len(texts) == 3
        chosen_score = scores[texts.index(record.candidates[0])]
        rejected_score = scores[texts.index(record.candidates[1])]
        if record.label == "tie":
            assert chosen_score == rejected_score == max(scores) == min(scores)
        else:
            assert record.label == "first" and chosen_score == max(scores) > rejected_score == min(scores)
        assert record.task == "image_understanding" and record.context is not None


def test_pairs_are_cached_by_the_policy_weights(answers, tiny_qwen):
    model, processor = tiny_qwen
    again = OracleRankedAnswers(
        answers.cache_dir,
        processor,
        model,
        records_per_stream=answers.records_per_stream,
        candidates=3,
        max_new_tokens=6,
    )
    again.prepare()
    assert again.folder == answers.folder
    assert len(list(answers.cache_dir.iterdir())) == 1


def test_greedy_candidates_are_refused(tiny_qwen, tmp_path):
    model, processor = tiny_qwen
    with pytest.raises(ValueError, match="temperature"):
        OracleRankedAnswers(tmp_path, processor, model, temperature=0.0)
