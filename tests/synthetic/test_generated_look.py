"""Generation records that look like the tiny generators' samples: stored as a generator stores them, labelled by
what the oracle reads from those pixels, and varied (some near clean, some wrecked)."""

from collections import Counter

import numpy as np
import pytest

from unified_reward.data.media import VideoSampling, decode_media
from unified_reward.data.schema import VideoClip
from unified_reward.data.shards import encode_record
from unified_reward.synthetic import oracle
from unified_reward.synthetic.generated_look import GENERATOR_SIZE, generated_look
from unified_reward.synthetic.render import render_image
from unified_reward.synthetic.scene import Scene, describe_reading, read_attributes
from unified_reward.synthetic.world import WorldConfig, make_record, plan_record

LOOK = WorldConfig(seed=0, generated_look=1.0)
SAMPLING = VideoSampling(num_frames=8)


def _pixels(media) -> np.ndarray:
    decoded = decode_media(media, SAMPLING)
    return decoded.frames if isinstance(decoded, VideoClip) else np.asarray(decoded.convert("RGB"))


@pytest.mark.parametrize("task", ["image_generation", "video_generation"])
def test_stored_like_a_generators_samples_and_scored_by_the_oracle_from_those_pixels(task):
    for index in range(8):
        record = make_record(LOOK, "test", task, "pair", index)
        assert record.meta["generated_look"] is True
        assert encode_record(record) == encode_record(make_record(LOOK, "test", task, "pair", index))
        samples = [_pixels(c) for c in record.candidates]
        assert all(s.shape[-3:] == (GENERATOR_SIZE, GENERATOR_SIZE, 3) for s in samples)
        if task == "video_generation":
            assert all(len(s) == LOOK.num_frames for s in samples)
        # what the oracle reads from the stored (lossless) pixels is what the record says, as it reads a sample
        scores = [oracle.score_generated_sample(record.prompt, s) for s in samples]
        assert scores == record.meta["scores"]
        readings = [oracle.perceive(oracle.generated_sample_media(s)) for s in samples]
        assert readings == record.meta["candidate_readings"]
        assert record.label == ("tie" if scores[0] == scores[1] else "first" if scores[0] > scores[1] else "second")


def test_a_world_without_the_look_renders_the_same_records():
    for task in ("image_generation", "video_generation", "image_understanding"):
        plain = make_record(WorldConfig(seed=0), "train", task, "point", 3)
        share = make_record(WorldConfig(seed=0, generated_look=0.5), "train", task, "point", 3)
        if not share.meta.get("generated_look"):
            assert encode_record(plain) == encode_record(share)
    looks = Counter(
        bool(
            make_record(WorldConfig(seed=0, generated_look=0.5), "train", "image_generation", "pair", i).meta.get(
                "generated_look"
            )
        )
        for i in range(60)
    )
    assert 15 <= looks[True] <= 45, looks


def test_degradations_range_from_near_clean_to_wrecked():
    """Over many candidates, the oracle reads the planned scene back from some and not from others, and each kind of
    failure a generator shows occurs: a wrong count (objects missing or merged), colour, shape, position."""
    kept, wrong = 0, Counter()
    total = 0
    for index in range(60):
        plan = plan_record(LOOK, "train", "image_generation", "pair", index)
        record = make_record(LOOK, "train", "image_generation", "pair", index)
        for planned, seen in zip(plan.variants, record.meta["candidate_readings"], strict=True):
            total += 1
            misread = [a for a in planned.attributes if seen[a] != planned.value(a)]
            kept += not misread
            wrong.update(misread)
    assert 0.1 < kept / total < 0.6, (kept, total)
    assert all(wrong[a] > 0 for a in ("count", "color", "shape", "position")), wrong


def test_the_description_of_a_reading_states_only_what_was_read():
    full = {"count": 2, "color": "red", "shape": "circle", "position": "left"}
    assert describe_reading(full, "image") == "two red circles on the left"
    assert describe_reading({"count": 0, "color": None, "shape": None, "position": None}, "image") == "no objects"
    odd = {"count": 5, "color": None, "shape": "square", "motion": "still"}
    assert describe_reading(odd, "video") == "many squares not moving"
    assert read_attributes(describe_reading(odd, "video"), "video") == {"shape": "square"}
    moving = {"count": 1, "color": "blue", "shape": None, "motion": "up"}
    assert read_attributes(describe_reading(moving, "video"), "video") == {"count": 1, "color": "blue", "motion": "up"}


def test_generated_look_keeps_the_layout_at_the_generators_size():
    rng = np.random.default_rng(0)
    image = render_image(Scene("image", 2, "green", "square", position="middle"), rng)
    out = generated_look(image, np.random.default_rng(1))
    assert out.shape == (GENERATOR_SIZE, GENERATOR_SIZE, 3) and out.dtype == np.uint8
    assert np.array_equal(out, generated_look(image, np.random.default_rng(1)))


@pytest.mark.parametrize("experiment", ["diffusion_pretrain_image", "diffusion_pretrain_video"])
def test_generators_learn_from_clean_renders_whatever_the_worlds_default(tmp_path, experiment):
    from tests_support import ROOT, compose_config

    assert compose_config(tmp_path, f"experiment={experiment}").data.source.generated_look == 0.0
    assert "generated_look: 0.0" in (ROOT / "configs" / "experiment" / "diffusion_pretrain_image.yaml").read_text()
