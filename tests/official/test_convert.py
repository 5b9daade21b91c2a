import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from unified_reward.data.media import encode_video
from unified_reward.data.reading import ShardStream
from unified_reward.data.schema import PointLabel, VideoClip
from unified_reward.data.shards import read_manifest
from unified_reward.official.convert import convert_file, main
from unified_reward.synthetic.render import render_image, render_video
from unified_reward.synthetic.scene import Scene

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
        {  # two name stems (v0_*, v1_*): two videos of 8 and 4 frames, whatever the count
            "id": "frames12",
            "images": frames[:12],
            "conversations": _conv(CAPTION_PAIR.format(caption="x"), "Video 1 is better."),
        },
        {  # one stem, a pair verdict: 7 frames cannot be two equal videos
            "id": "frames7",
            "images": frames[:7],
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
        "video_generation_pair": 2,
        "video_understanding_pair": 1,
        "video_generation_point": 1,
    }
    reasons = {f["id"]: f["reason"] for f in report.failures}
    assert reasons["official-gone"] == "media file not found: missing.png"
    assert reasons["official-vague"].startswith("answer is neither a pairwise verdict")
    assert reasons["official-noscale"].startswith("instruction names no score scale")
    assert reasons["official-toohigh"] == "label outside its scale: the answer's score is outside 1-10"
    assert reasons["official-noturns"] == "no 'conversations' list"
    assert reasons["official-frames7"].startswith("7 frames of one sequence cannot be split")
    assert reasons["official-15"] == "record is not a JSON object"
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
    assert [len(set(c.timestamps)) for c in records["official-frames12"].candidates] == [8, 4]  # distinct frames
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
    assert "converted 9 records" in out and "media file not found: missing.png" in out
    assert Counter(json.loads((tmp_path / "cli" / "conversion_report.json").read_text())["converted"]).total() == 9


VIDEOFEEDBACK_HUMAN = (  # TIGER-Lab/VideoFeedback's question form (as VideoScore's benchmark scripts read it)
    "\nSuppose you are an expert in judging and evaluating the quality of AI-generated videos, please watch the "
    "following frames of a given video and see the text prompt for generating the video, then give scores from 5 "
    'different dimensions: ...\nFor this video, the text prompt is "{caption}",\nall the frames of video are as '
    "follows: \n" + "<image> " * 8
)
VIDEOFEEDBACK_GPT = (
    "visual quality: 3\n temporal consistency: 2\n dynamic degree: 3\n text-to-video alignment: 4\n "
    "factual consistency: 2"
)
LLAVA_BENCH = (  # a LLaVA-bench review: the critic scores both answers, first line "s1 s2"
    "<image>\n[Question]\n{question}\n\n[Assistant 1]\n{a}\n\n[End of Assistant 1]\n\n[Assistant 2]\n{b}\n\n"
    "[End of Assistant 2]\n\n[System]\nWe would like to request your feedback on the performance of two AI "
    "assistants in response to the user question displayed above. Please rate them on a scale of 1 to 10."
)
CAPTION_RATING = (  # LLaVA-Critic's caption rating (pointwise, 0-100)
    "<image>\nQuestion: [{question}]\nText Caption: [{caption}]\nFrom 0 to 100, how much do you rate for this Text "
    "Caption in terms of the correct and comprehensive description of the image?\nProvide a few lines for "
    'explanation and the rate number at last after "Final Score:".'
)


@pytest.fixture()
def layouts(tmp_path):
    """One record of every further layout of the release, with generated media."""
    rng = np.random.default_rng(1)
    media = tmp_path / "media"
    moving = Scene("video", 1, "blue", "square", motion="right")
    for folder in ("va", "vb", "vf", "folder_video"):
        (media / folder).mkdir(parents=True)
    for t, frame in enumerate(render_video(moving, rng, 64, 12)):
        for folder in ("va", "vb", "vf", "folder_video"):
            Image.fromarray(frame).save(media / folder / f"{t:03d}.jpg")
    Image.fromarray(render_image(Scene("image", 2, "red", "circle", "left"), rng)).save(media / "a.png")
    eight = [f"vf/{t:03d}.jpg" for t in range(8)]
    records = [
        {  # VideoFeedback: frames of one video, five dimension scores, no overall score
            "id": "videofeedback",
            "images": eight,
            "text prompt": "a blue square moving right",
            "visual quality": 3,
            "temporal consistency": 2,
            "dynamic degree": 3,
            "text-to-video alignment": 4,
            "factual consistency": 2,
            "conversations": _conv(VIDEOFEEDBACK_HUMAN.format(caption="a blue square moving right"), VIDEOFEEDBACK_GPT),
        },
        {  # the same, the scores only in the answer and the caption only in the question
            "id": "videofeedback-text",
            "images": eight,
            "conversations": _conv(VIDEOFEEDBACK_HUMAN.format(caption="a blue square"), VIDEOFEEDBACK_GPT),
        },
        {  # frames of two videos in one `images` list, from two folders
            "id": "two-folders",
            "images": [f"va/{t:03d}.jpg" for t in range(6)] + [f"vb/{t:03d}.jpg" for t in range(6)],
            "conversations": _conv(
                CAPTION_PAIR.replace("<image>\n", "").format(caption="a square"), "Video 2 is better than Video 1."
            ),
        },
        {  # a `video` that is a folder of frames (12 frames, at most 8 kept)
            "id": "folder-video",
            "video": "folder_video",
            "conversations": _conv(
                VIDEO_PAIR.format(question="Where does it move?", a="Left.", b="Right."),
                "Overall Judgment: Answer 2 is better than Answer 1. Answer 1 names the wrong side.",
            ),
        },
        {  # LLaVA-Critic pairwise, bracketed verdict
            "id": "critic-bracket",
            "image": "a.png",
            "conversations": _conv(
                CRITIC_PAIR.format(question="What colour are the circles?", a="Red.", b="Blue."),
                "The first response names the colour right. The better response: [1]",
            ),
        },
        {  # LLaVA-Critic pairwise with two scores (LLaVA-bench)
            "id": "critic-scores",
            "image": "a.png",
            "conversations": _conv(
                LLAVA_BENCH.format(question="How many circles?", a="Three.", b="Two."),
                "3 9\nAssistant 1 miscounts. Assistant 2 is right.",
            ),
        },
        {  # a caption and a question of several lines, in brackets
            "id": "multiline",
            "images": ["a.png", "a.png"],
            "conversations": _conv(
                CAPTION_PAIR.format(caption="two red circles\non the left of a dark canvas"),
                "Both images are equally good.",
            ),
        },
        {
            "id": "multiline-question",
            "image": "a.png",
            "conversations": _conv(
                CRITIC_PAIR.format(question="Which colour?\n(A) red\n(B) blue", a="(A)", b="(B)"),
                "Response A is better than response B.",
            ),
        },
        {  # LLaVA-Critic caption rating: image understanding, the caption is the rated answer
            "id": "caption-rating",
            "image": "a.png",
            "conversations": _conv(
                CAPTION_RATING.format(question="Describe the image.", caption="Two red circles on the left."),
                "The caption is accurate but brief. Final Score: 85.",
            ),
        },
    ]
    path = tmp_path / "layouts.json"
    path.write_text(json.dumps(records))
    return path, media


def _converted(path, media, out, **options):
    from unified_reward.data.media import VideoSampling

    report = convert_file(path, media, out, source="r", **options)
    manifest = read_manifest(out)
    urls = [str(out / s) for entry in manifest["streams"].values() for s in entry["shards"]]
    sampling = VideoSampling(num_frames=None, fps=1.0, max_frames=64)  # every stored frame
    return report, {r.id: r for r in ShardStream(urls, sampling=sampling)}


def test_every_layout_of_the_release_converts_as_a_careful_reader_would(layouts, tmp_path):
    path, media = layouts
    report, records = _converted(path, media, tmp_path / "out", max_frames=8)
    assert report.failures == []
    feedback = records["r-videofeedback"]
    assert (feedback.task, feedback.mode, feedback.prompt) == (
        "video_generation",
        "point",
        "a blue square moving right",
    )
    assert feedback.label == PointLabel(2.8, 1, 4)  # the mean of the five dimensions
    assert feedback.meta["dimensions"]["text-to-video alignment"] == 4.0 and len(feedback.meta["dimensions"]) == 5
    assert len(feedback.candidates[0].frames) == 8
    from_text = records["r-videofeedback-text"]
    assert from_text.prompt == "a blue square" and from_text.label == PointLabel(2.8, 1, 4)

    two = records["r-two-folders"]
    assert (two.task, two.label, [len(c.frames) for c in two.candidates]) == ("video_generation", "second", [6, 6])
    folder = records["r-folder-video"]
    assert (folder.task, folder.label, folder.candidates) == ("video_understanding", "second", ("Left.", "Right."))
    assert len(folder.context.frames) == 8  # 12 frames in the folder, 8 kept evenly

    assert records["r-critic-bracket"].label == "first"
    scored = records["r-critic-scores"]
    assert (scored.task, scored.prompt, scored.candidates) == (
        "image_understanding",
        "How many circles?",
        ("Three.", "Two."),
    )
    assert scored.label == "second" and scored.meta["scores"] == [3.0, 9.0]

    assert records["r-multiline"].prompt == "two red circles\non the left of a dark canvas"
    question = records["r-multiline-question"]
    assert question.prompt == "Which colour?\n(A) red\n(B) blue" and question.label == "first"

    rating = records["r-caption-rating"]
    assert (rating.task, rating.mode, rating.prompt) == ("image_understanding", "point", "Describe the image.")
    assert rating.candidates == ("Two red circles on the left.",) and rating.label == PointLabel(85, 0, 100)


def test_the_videofeedback_label_rule_is_configurable_and_every_dimension_is_kept(layouts, tmp_path):
    path, media = layouts
    _, records = _converted(path, media, tmp_path / "out", videofeedback_label="text-to-video alignment")
    assert records["r-videofeedback"].label == PointLabel(4.0, 1, 4)
    report, _ = _converted(path, media, tmp_path / "out2", videofeedback_label="sharpness")
    assert {f["reason"] for f in report.failures} == {
        "VideoFeedback record has no 'sharpness' score (videofeedback_label=sharpness)"
    }


def test_unified_reward_edit_pairs_convert_to_image_editing(tmp_path):
    from unified_reward.prompts.templates import load_templates

    rng = np.random.default_rng(1)
    media = tmp_path / "media"
    media.mkdir()
    source = Scene("image", 2, "red", "circle", "left")
    for name, scene in [("src", source), ("e1", source.with_changes(("color",), rng)), ("e2", source)]:
        Image.fromarray(render_image(scene, rng)).save(media / f"{name}.png")
    official = load_templates("official")["image_editing_pair"].instruction
    text = official.replace("<context><candidate1><candidate2>", "<image>\n<image>\n<image>\n")
    records = [
        {
            "id": "edit-1",
            "images": ["src.png", "e1.png", "e2.png"],
            "conversations": _conv(text.format(prompt="make the circles blue"), "Edited image 1 is better"),
        },
        {  # the pointwise form answers a JSON list of two 0-25 scores: reported, not guessed
            "id": "edit-2",
            "images": ["src.png", "e1.png"],
            "conversations": _conv("Source Image (before editing)\nEditing instruction:x", '{"score": [20, 18]}'),
        },
    ]
    path = tmp_path / "edit.json"
    path.write_text(json.dumps(records))
    report = convert_file(path, media, tmp_path / "out", source="official")
    assert dict(report.converted) == {"image_editing_pair": 1}
    assert [f["id"] for f in report.failures] == ["official-edit-2"]
    urls = [str(p) for p in sorted((tmp_path / "out").glob("*.tar"))]
    (record,) = list(ShardStream(urls))
    assert (record.task, record.prompt, record.label) == ("image_editing", "make the circles blue", "first")
    assert record.context.size == (64, 64) and [c.size for c in record.candidates] == [(64, 64), (64, 64)]
