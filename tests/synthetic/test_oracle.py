import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from unified_reward.data.schema import VideoClip
from unified_reward.synthetic import oracle
from unified_reward.synthetic.render import render_image, render_video
from unified_reward.synthetic.scene import Scene, describe, random_scene


def degrade(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a small generator's sample looks like: blurred, noisy, JPEG-compressed, off-colour background."""
    image = Image.fromarray(frame).filter(ImageFilter.GaussianBlur(0.8))
    array = np.asarray(image).astype(np.float32) + rng.normal(0, 8, frame.shape) + rng.uniform(-10, 10, 3)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=70)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.mark.parametrize("size, at_least", [(48, 50), (64, 57), (96, 58)])
def test_oracle_reads_degraded_images_at_several_sizes(size, at_least):
    rng = np.random.default_rng(size)
    correct = 0
    for _ in range(60):
        scene = random_scene("image", rng)
        image = degrade(render_image(scene, rng, size), rng)
        correct += oracle.score_generation(describe(scene), image).score == 5.0
    assert correct >= at_least, correct


def test_oracle_reads_degraded_videos_and_their_motion():
    rng = np.random.default_rng(0)
    correct = 0
    for _ in range(40):
        scene = random_scene("video", rng)
        frames = np.stack([degrade(f, rng) for f in render_video(scene, rng, 64, 8)])
        correct += oracle.score_generation(describe(scene), frames).score == 5.0
    assert correct >= 38, correct


def test_each_missed_attribute_costs_one_point():
    rng = np.random.default_rng(1)
    scene = Scene("image", count=2, color="red", shape="square", position="right")
    image = render_image(scene, rng)
    assert oracle.score_generation("two red squares on the right", image).score == 5.0
    assert oracle.score_generation("two blue squares on the right", image).score == 4.0
    assert oracle.score_generation("three blue squares on the left", image).score == 2.0
    result = oracle.score_generation("one green circle in the middle", image)
    assert result.score == 1.0 and not any(result.satisfied.values())


def test_answers_are_scored_on_the_asked_attributes_only():
    rng = np.random.default_rng(2)
    scene = Scene("video", count=3, color="yellow", shape="triangle", motion="up")
    clip = VideoClip(render_video(scene, rng), np.arange(8) / 8)
    assert oracle.score_answer("Which way are the objects going?", clip, "They are moving up.").score == 5.0
    assert oracle.score_answer("Which way are the objects going?", clip, "They go down.").score == 1.0
    describe_all = "Describe the objects: how many, what colour, what shape, and which way they move."
    assert oracle.score_answer(describe_all, clip, "three yellow squares moving up").score == 4.0
    # an answer that hedges between two values states neither
    assert oracle.score_answer("What colour are the objects?", clip, "yellow or red").score == 1.0


def test_empty_or_still_media_satisfy_nothing_they_cannot_show():
    blank = np.full((64, 64, 3), 30, np.uint8)
    assert oracle.score_generation("one red circle on the left", blank).score == 1.0
    still = np.repeat(render_image(Scene("image", 1, "red", "circle", "left"), np.random.default_rng(0))[None], 8, 0)
    assert oracle.perceive(still)["motion"] == "still"
    assert oracle.score_generation("one red circle moving left", still).satisfied["motion"] is False


def test_unknown_questions_are_an_error_not_a_guess():
    with pytest.raises(ValueError, match="cannot tell what this question asks"):
        oracle.score_answer("Is this a nice picture?", np.zeros((8, 8, 3), np.uint8), "yes")
