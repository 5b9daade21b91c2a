import re

import numpy as np
import pytest
from PIL import Image

from unified_reward.data.schema import EncodedMedia, PointLabel, PreferenceRecord, RecordError, VideoClip

PNG = EncodedMedia("image", "png", b"not-decoded-here")
MP4 = EncodedMedia("video", "mp4", b"not-decoded-here")


def record(**overrides):
    fields = dict(
        id="r1",
        task="image_generation",
        mode="pair",
        prompt="two red circles",
        candidates=(PNG, PNG),
        label="first",
        source="test",
    )
    fields.update(overrides)
    return PreferenceRecord(**fields)


def test_valid_records_of_every_task_and_mode():
    assert record().stream == "image_generation_pair"
    assert record(mode="point", candidates=(PNG,), label=PointLabel(4.5, 1, 5)).label.normalized() == 0.875
    assert record(task="video_generation", candidates=(MP4, MP4), label="tie").label == "tie"
    und = record(task="image_understanding", context=PNG, candidates=("a", "b"), label="second")
    assert und.chosen == "b" and und.rejected == "a"
    frames = VideoClip(np.zeros((2, 4, 4, 3), np.uint8), np.array([0.0, 0.5]))
    assert (
        record(
            task="video_understanding",
            context=frames,
            mode="point",
            candidates=("x",),
            label=PointLabel(70, 0, 100),
        ).context.num_frames
        == 2
    )
    assert record(candidates=(Image.new("RGB", (4, 4)), PNG)).candidates[0].size == (4, 4)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(id=""), "'id'"),
        (dict(task="image_painting"), "'task'"),
        (dict(mode="list"), "'mode'"),
        (dict(prompt="  "), "'prompt'"),
        (dict(candidates=(PNG,)), "'candidates'"),
        (dict(candidates=(PNG, MP4)), "'candidates[1]'"),
        (dict(candidates=(PNG, "text")), "'candidates[1]'"),
        (dict(context=PNG), "'context'"),
        (dict(task="image_understanding", candidates=("a", "b")), "'context'"),
        (dict(task="image_understanding", context=MP4, candidates=("a", "b")), "'context'"),
        (dict(label="1"), "'label'"),
        (dict(mode="point", candidates=(PNG,), label="first"), "'label'"),
        (dict(source=""), "'source'"),
    ],
)
def test_invalid_records_name_the_field(overrides, field):
    with pytest.raises(RecordError, match=re.escape(field)):
        record(**overrides)


def test_point_label_outside_its_scale_is_rejected():
    with pytest.raises(RecordError, match="outside its scale"):
        PointLabel(11, 1, 10)
    with pytest.raises(RecordError, match="not a valid range"):
        PointLabel(3, 5, 1)


def test_preference_pair_puts_chosen_first_and_ties_have_no_chosen():
    pair = PreferenceRecord.preference_pair(
        id="p",
        task="image_understanding",
        prompt="q?",
        chosen="good",
        rejected="bad",
        source="filter",
        context=PNG,
        meta={"p_first": 0.9},
    )
    assert (pair.chosen, pair.rejected, pair.label, pair.meta["p_first"]) == ("good", "bad", "first", 0.9)
    with pytest.raises(RecordError, match="not a strict preference pair"):
        _ = record(label="tie").chosen


def test_candidate_sets_validate_like_records_and_round_trip_through_shards():
    import pytest

    from unified_reward.data.schema import CandidateSet, RecordError
    from unified_reward.data.shards import decode_candidate_set, decode_sample, encode_record
    from unified_reward.synthetic.world import WorldConfig, make_record

    question = make_record(WorldConfig(), "train", "image_understanding", "pair", 0)
    candidate_set = CandidateSet(
        id="q0",
        task="image_understanding",
        prompt=question.prompt,
        candidates=("a", "b", "c"),
        source="t",
        context=question.context,
        meta={"oracle_scores": [1.0, 0.0, 0.5]},
    )
    assert candidate_set.stream == "image_understanding_candidates"
    again = decode_candidate_set(encode_record(candidate_set), None)
    assert again.candidates == ("a", "b", "c") and again.meta == candidate_set.meta
    with pytest.raises(RecordError, match="at least 2"):
        CandidateSet(
            id="q", task="image_understanding", prompt="p", candidates=("a",), source="t", context=question.context
        )
    with pytest.raises(RecordError, match="context"):
        CandidateSet(id="q", task="image_understanding", prompt="p", candidates=("a", "b"), source="t")
    with pytest.raises(RecordError, match="image media"):
        CandidateSet(id="q", task="image_generation", prompt="p", candidates=("a", "b"), source="t")
    from unified_reward.data.shards import SampleError

    with pytest.raises(SampleError, match="mode"):  # a candidate set is not a judged record, and vice versa
        decode_sample(encode_record(candidate_set), None)
    with pytest.raises(SampleError, match="mode"):
        decode_candidate_set(encode_record(question), None)
