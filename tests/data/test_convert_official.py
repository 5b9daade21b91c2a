import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from unified_reward.data.convert_official import convert_file, main
from unified_reward.data.media import encode_video
from unified_reward.data.reading import ShardStream
from unified_reward.data.schema import PointLabel, VideoClip
from unified_reward.data.shards import read_manifest
from unified_reward.data.synthetic.render import render_image, render_video
from unified_reward.data.synthetic.scene import Scene

CAPTION_PAIR = (
    "<image>\n<image>\nYou are given a text caption and two generated images based on that caption. Your task is to "
    "evaluate and compare these images based on two key criteria: alignment and quality.\n"
    "Text Caption: [{caption}]\nPlease compare the two images and say which one is better."
)
CAPTION_POINT = (
    "<image>\nYou are given a text caption and a generated image. Rate it on a scale from 1 to 10.\n"
    "Text Caption: [{caption}]\nEnd your answer with 'Final Score: X'."
)
CRITIC_PAIR = (
    "<image>\nGiven an image and a corresponding question, please serve as an unbiased and fair judge to evaluate "
    "the quality of the answers provided by a Large Multimodal Model (LMM).\nQuestion: [{question}]\n"
    "The first response: [{a}]\nThe second response: [{b}]\nASSISTANT:"
)
CRITIC_POINT = (
    "<image>\nPlease evaluate the response on a scale of 1-10.\nQuestion: [{question}]\n"
    "The model's response: [{a}]\nASSISTANT:"
)
VIDEO_PAIR = (
    "<video>\nYou are given a video and a question.\nQuestion: {question}\nAnswer 1: {a}\nAnswer 2: {b}\n"
    "Please evaluate both answers based on the following criteria: accuracy, completeness."
)


def _conv(human, gpt):
    return [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]


@pytest.fixture()
def release(tmp_path):
    """A small release in the official layout: JSON records and a media folder with generated media."""
    rng = np.random.default_rng(0)
    media = tmp_path / "media"
    (media / "frames").mkdir(parents=True)
    red = Scene("image", 2, "red", "circle", "left")
    Image.fromarray(render_image(red, rng)).save(media / "a.png")
    Image.fromarray(render_image(red.with_changes(("color",), rng), rng)).save(media / "b.jpg")
    moving = Scene("video", 1, "blue", "square", motion="right")
    for v in range(2):
        for t, frame in enumerate(render_video(moving, rng, 64, 8)):
            Image.fromarray(frame).save(media / "frames" / f"v{v}_{t}.png")
    (media / "clip.mp4").write_bytes(encode_video(render_video(moving, rng, 64, 8)).data)
    frames = [f"frames/v{v}_{t}.png" for v in range(2) for t in range(8)]
    records = [
        {
            "id": "hpd-1",
            "images": ["a.png", "b.jpg"],
            "conversations": _conv(
                CAPTION_PAIR.format(caption="two red circles on the left"), "Image 1 is better than Image 2."
            ),
        },
        {
            "id": "evalmuse-1",
            "image": "a.png",
            "conversations": _conv(CAPTION_POINT.format(caption="two red circles"), "Good alignment. Final Score: 7.5"),
        },
        {
            "id": "critic-pair-1",
            "image": "a.png",
            "conversations": _conv(
                CRITIC_PAIR.format(question="What colour are the circles?", a="Blue.", b="Red."),
                "The second response is correct.\nOverall Judgment: Answer 2 is better than Answer 1.",
            ),
        },
        {
            "id": "critic-point-1",
            "image": "a.png",
            "conversations": _conv(CRITIC_POINT.format(question="How many circles?", a="Two."), "Final Score: 9"),
        },
        {
            "id": "videodpo-1",
            "images": frames,
            "conversations": _conv(
                CAPTION_PAIR.replace("<image>\n", "").format(caption="a blue square moving right"),
                "Video 2 is better.",
            ),
        },
        {
            "id": "sharegptvideo-1",
            "video": "clip.mp4",
            "conversations": _conv(
                VIDEO_PAIR.format(question="Where does it move?", a="Right.", b="Left."),
                "<think>It moves right.</think><answer>Overall Judgment: Answer 1 is better.</answer>",
            ),
        },
        {
            "id": "videofeedback-1",
            "video": "clip.mp4",
            "conversations": _conv(
                CAPTION_POINT.replace("<image>", "<video>").format(caption="a blue square"), "Final Score: 8"
            ),
        },
        {
            "id": "tie-1",
            "images": ["a.png", "a.png"],
            "conversations": _conv(CAPTION_PAIR.format(caption="two red circles"), "Both images are equally good."),
        },
        # damaged ones
        {
            "id": "gone",
            "images": ["a.png", "missing.png"],
            "conversations": _conv(CAPTION_PAIR.format(caption="x"), "Image 1 is better."),
        },
        {
            "id": "vague",
            "images": ["a.png", "b.jpg"],
            "conversations": _conv(CAPTION_PAIR.format(caption="x"), "I like both of them."),
        },
        {
            "id": "noscale",
            "image": "a.png",
            "conversations": _conv("<image>\nText Caption: [two red circles]\nRate it.", "Final Score: 3"),
        },
        {
            "id": "toohigh",
            "image": "a.png",
            "conversations": _conv(CAPTION_POINT.format(caption="two red circles"), "Final Score: 12"),
        },
        {"id": "noturns", "image": "a.png"},
        {
            "id": "frames12",
            "images": frames[:12],
            "conversations": _conv(CAPTION_PAIR.format(caption="x"), "Video 1 is better."),
        },
        "not a record",
        {
            "id": "hpd-1",
            "images": ["a.png", "b.jpg"],
            "conversations": _conv(CAPTION_PAIR.format(caption="dup"), "Image 1 is better."),
        },
    ]
    path = tmp_path / "release.json"
    path.write_text(json.dumps(records))
    return path, media


def test_converts_every_task_and_mode_and_reports_the_rest(release, tmp_path):
    path, media = release
    report = convert_file(path, media, tmp_path / "out", source="official")
    assert dict(report.converted) == {
        "image_generation_pair": 2,
        "image_generation_point": 1,
        "image_understanding_pair": 1,
        "image_understanding_point": 1,
        "video_generation_pair": 1,
        "video_understanding_pair": 1,
        "video_generation_point": 1,
    }
    reasons = {f["id"]: f["reason"] for f in report.failures}
    assert reasons["official-gone"] == "media file not found: missing.png"
    assert reasons["official-vague"].startswith("answer is neither a pairwise verdict")
    assert reasons["official-noscale"].startswith("instruction names no score scale")
    assert reasons["official-toohigh"].startswith("label outside its scale")
    assert reasons["official-noturns"] == "no 'conversations' list"
    assert reasons["official-frames12"].startswith("12 frame images is not a multiple")
    assert reasons["official-14"] == "record is not a JSON object"
    assert reasons["official-hpd-1"].startswith("duplicate id")
    assert len(report.failures) == 8
    saved = json.loads((tmp_path / "out" / "conversion_report.json").read_text())
    assert len(saved["failures"]) == 8 and "could not convert 8 records" in report.summary()

    manifest = read_manifest(tmp_path / "out")
    urls = [str(tmp_path / "out" / s) for entry in manifest["streams"].values() for s in entry["shards"]]
    records = {r.id: r for r in ShardStream(urls)}
    hpd = records["official-hpd-1"]
    assert (hpd.task, hpd.mode, hpd.prompt, hpd.label) == (
        "image_generation",
        "pair",
        "two red circles on the left",
        "first",
    )
    assert hpd.rationale == "Image 1 is better than Image 2." and "Text Caption" in hpd.meta["instruction"]
    assert "<image>" not in hpd.meta["instruction"]
    assert records["official-evalmuse-1"].label == PointLabel(7.5, 1, 10)
    critic = records["official-critic-pair-1"]
    assert (critic.task, critic.prompt, critic.candidates, critic.label) == (
        "image_understanding",
        "What colour are the circles?",
        ("Blue.", "Red."),
        "second",
    )
    point = records["official-critic-point-1"]
    assert (point.candidates, point.label) == (("Two.",), PointLabel(9, 1, 10))
    video_pair = records["official-videodpo-1"]
    assert video_pair.task == "video_generation" and video_pair.label == "second"
    assert all(isinstance(c, VideoClip) and c.frames.shape == (8, 64, 64, 3) for c in video_pair.candidates)
    sharegpt = records["official-sharegptvideo-1"]
    assert (sharegpt.task, sharegpt.candidates, sharegpt.label) == (
        "video_understanding",
        ("Right.", "Left."),
        "first",
    )
    assert records["official-videofeedback-1"].task == "video_generation"
    assert records["official-tie-1"].label == "tie"


def test_default_scale_rescues_records_that_name_none(release, tmp_path):
    path, media = release
    report = convert_file(path, media, tmp_path / "out", default_scale=(1.0, 5.0))
    assert "release-noscale" not in {f["id"] for f in report.failures}


def test_command_line_prints_a_summary(release, tmp_path, capsys):
    path, media = release
    main(["--json", str(path), "--media-root", str(media), "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert "converted 8 records" in out and "media file not found: missing.png" in out
    assert Counter(json.loads((tmp_path / "cli" / "conversion_report.json").read_text())["converted"]).total() == 8
