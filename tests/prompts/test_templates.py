import json

import pytest

from unified_reward.prompts.parsing import parse_pair, parse_score
from unified_reward.prompts.templates import DEFAULT_TEMPLATES, load_templates, score_answer


def test_eight_templates_with_media_where_each_task_needs_it():
    assert len(DEFAULT_TEMPLATES) == 8
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
    path.write_text(json.dumps({"image_editing_pair": {"instruction": "x"}}))
    with pytest.raises(ValueError, match="unknown template 'image_editing_pair'"):
        load_templates(path)


def test_missing_media_is_an_error():
    with pytest.raises(ValueError, match="needs <candidate2>"):
        DEFAULT_TEMPLATES["image_generation_pair"].render("x", candidates=("A",))
