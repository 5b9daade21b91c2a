import json

import pytest

from unified_reward.data.schema import MODES
from unified_reward.data.tasks import TASKS, task_spec
from unified_reward.prompts.parsing import parse_pair, parse_score
from unified_reward.prompts.templates import DEFAULT_TEMPLATES, load_templates, score_answer


def test_a_template_per_task_and_mode_with_media_where_each_task_needs_it():
    assert set(DEFAULT_TEMPLATES) == {f"{t}_{m}" for t in TASKS for m in MODES}
    parts = DEFAULT_TEMPLATES["image_generation_pair"].render("two red circles", candidates=("A", "B"))
    assert [p["type"] for p in parts] == ["text", "image", "text", "image", "text"]
    assert [p["media"] for p in parts if p["type"] == "image"] == ["A", "B"]
    parts = DEFAULT_TEMPLATES["video_understanding_point"].render(
        "Where?", context="clip", candidates=("left",), media_kind="video", scale=(1, 10)
    )
    text = "".join(p.get("text", "") for p in parts)
    assert "Where?" in text and "Answer: left" in text and "from 1 to 10" in text
    assert [p["media"] for p in parts if p["type"] == "video"] == ["clip"]


def test_answers_parse_back_to_their_meaning():
    for name, template in DEFAULT_TEMPLATES.items():
        for verdict, answer in template.pair_answers.items():
            assert parse_pair(answer).verdict == verdict, (name, answer)
    for score in (1, 3.5, 7, 2.3333):
        assert parse_score(score_answer(score)).score == pytest.approx(round(score, 2))


def test_templates_replaced_from_a_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"image_generation_point": {"instruction": "Rate <candidate1> for {prompt}."}}))
    templates = load_templates(path)
    assert templates["image_generation_point"].instruction == "Rate <candidate1> for {prompt}."
    assert templates["image_generation_pair"] == DEFAULT_TEMPLATES["image_generation_pair"]
    path.write_text(json.dumps({"image_painting_pair": {"instruction": "x"}}))
    with pytest.raises(ValueError, match="unknown template 'image_painting_pair'"):
        load_templates(path)


def test_missing_media_is_an_error():
    with pytest.raises(ValueError, match="needs <candidate2>"):
        DEFAULT_TEMPLATES["image_generation_pair"].render("x", candidates=("A",))


def test_our_templates_offer_a_tie_only_where_their_prompt_allows_one():
    for name, template in DEFAULT_TEMPLATES.items():
        if not name.endswith("_pair"):
            continue
        offers_tie = "equally good" in template.instruction
        assert ("tie" in template.pair_answers) is offers_tie, name
        assert offers_tie is task_spec(name.removesuffix("_pair")).ties


OFFICIAL_SCALES = {
    "image_generation_point": ((1, 5), "assign a score from 1 to 5"),
    "image_understanding_point": ((0, 100), "From 0 to 100"),
    "video_generation_point": ((1, 10), "assign a score from 1 to 10"),
    "video_understanding_point": ((1, 5), "assign a score from 1 to 5"),
}


def test_official_templates_ask_with_the_official_prompts_answers_and_scales():
    official = load_templates("official")
    assert set(official) == set(DEFAULT_TEMPLATES)
    for name, (scale, wording) in OFFICIAL_SCALES.items():
        assert official[name].scale == scale and wording in official[name].instruction, name
        assert official[name].asked_scale((1, 5)) == scale  # a record's own scale does not change what is asked
    pair = official["image_generation_pair"]
    parts = pair.render("a red circle", candidates=("A", "B"))
    assert [p["type"] for p in parts] == ["image", "image", "text"]  # media first, as the official scripts send
    assert parts[-1]["text"].startswith("You are given a text caption and two generated images")
    assert parts[-1]["text"].endswith("Text Caption: [a red circle]")
    assert pair.pair_answers == {
        "first": "Image 1 is better.",
        "second": "Image 2 is better.",
        "tie": "Both images are equally good.",
    }
    assert "tie" not in official["video_understanding_pair"].pair_answers  # "can't say ... equally good"
    video = official["video_understanding_pair"].render(
        "Why?", context="clip", candidates=("x", "y"), media_kind="video"
    )
    assert video[0] == {"type": "video", "media": "clip"} and "Answer 1: x\nAnswer 2: y" in video[1]["text"]
    for name, template in official.items():
        for verdict, answer in template.pair_answers.items():
            assert parse_pair(answer).verdict == verdict, (name, answer)


def test_official_templates_survive_save_and_load(tmp_path):
    from unified_reward.prompts.templates import save_templates

    save_templates(load_templates("official"), tmp_path / "t.json")
    assert load_templates(tmp_path / "t.json") == load_templates("official")


def test_a_label_is_rescaled_to_the_scale_a_template_asks_on():
    from unified_reward.prompts.templates import rescale

    assert rescale(3.0, (1, 5), (0, 100)) == 50.0
    assert rescale(5.0, (1, 5), (1, 10)) == 10.0
    assert rescale(4.0, (1, 5), (1, 5)) == 4.0
