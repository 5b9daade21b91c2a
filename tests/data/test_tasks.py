"""The task table against the places that read it: every task has templates whose media markers and answers say
what the table says it shows and judges, records of the world that hold them, and the schema's checks."""

import re

import pytest

from unified_reward.data.schema import MODES, RecordError, check_candidates, check_context, stream_name
from unified_reward.data.tasks import PAPER_TASKS, TASK_TABLE, TASKS, media_kind_of, task_spec
from unified_reward.prompts.templates import DEFAULT_TEMPLATES, load_templates


def test_the_table_names_each_task_once_and_the_paper_tasks_first():
    assert tuple(TASK_TABLE) == TASKS and TASKS[: len(PAPER_TASKS)] == PAPER_TASKS
    assert all(spec.name == name for name, spec in TASK_TABLE.items())
    assert "image_editing" in TASKS and media_kind_of("image_editing") == "image"
    with pytest.raises(ValueError, match="unknown task 'image_painting'"):
        task_spec("image_painting")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", MODES)
def test_each_template_shows_what_the_table_says(task, mode):
    spec = task_spec(task)
    text = DEFAULT_TEMPLATES[stream_name(task, mode)].instruction
    markers = re.findall(r"<(context|candidate\d)>", text)
    wanted = ["context"] * spec.context
    if spec.media_candidates:
        wanted += ["candidate1", "candidate2"] if mode == "pair" else ["candidate1"]
    assert markers == wanted
    assert ("{answer1}" in text) == (not spec.media_candidates)
    answers = DEFAULT_TEMPLATES[stream_name(task, mode)].pair_answers
    if mode == "pair":
        assert ("tie" in answers) == spec.ties
        assert answers["first"] == f"{spec.candidate_unit.title()} 1 is better."


def test_official_templates_cover_editing_pairs_in_the_official_order():
    official = load_templates("official")["image_editing_pair"]
    assert official.instruction.startswith("<context><candidate1><candidate2>")  # source, edit 1, edit 2, then text
    assert official.instruction.endswith("Text instruction - {prompt}\n")
    assert official.pair_answers == {"first": "Edited image 1 is better", "second": "Edited image 2 is better"}


def test_the_schema_checks_an_edit_as_the_table_says(decoded_records):
    edit = next(r for r in decoded_records if r.task == "image_editing" and r.mode == "pair")
    check_context("image_editing", edit.context)
    check_candidates("image_editing", edit.candidates)
    with pytest.raises(RecordError, match="'context' must be image media for image_editing"):
        check_context("image_editing", None)
    with pytest.raises(RecordError, match=r"'candidates\[0\]' must be image media for image_editing"):
        check_candidates("image_editing", ("a text",))
