import pytest

from unified_reward.models.tokenizer import build_tiny_tokenizer
from unified_reward.synthetic.rationale_probe import role_spans, token_roles
from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import WorldConfig, make_record

ANSWER = (
    "The caption asks for two red circles on the left.\n"
    "Image 1 shows two red squares on the left.\n"
    "Image 2 shows two red circles on the left.\n"
    "Image 1: two is two yes, red is red yes, square is circle no, left is left yes. 3/4.\n"
    "Image 2: two is two yes, red is red yes, circle is circle yes, left is left yes. 4/4.\n"
    "3 is less than 4.\n"
    "Image 2 is better."
)


def _roles(answer: str) -> list[tuple[str, str]]:
    return [(answer[s:e], role) for s, e, role in role_spans(answer)]


def test_each_step_of_a_pair_rationale_has_its_role():
    roles = _roles(ANSWER)
    assert [w for w, r in roles if r == "asked"] == ["two", "red", "circles", "left"]
    assert [w for w, r in roles if r == "seen"] == ["two", "red", "squares", "left", "two", "red", "circles", "left"]
    assert [w for w, r in roles if r == "cand"][:4] == ["two", "red", "square", "left"]
    assert [w for w, r in roles if r == "true"][:4] == ["two", "red", "circle", "left"]
    assert [w for w, r in roles if r == "check"] == ["yes", "yes", "no", "yes"] + ["yes"] * 4
    assert [w for w, r in roles if r == "tally"] == ["3", "4"]
    assert [w for w, r in roles if r == "compare"] == ["3", "less", "4"]
    assert [w for w, r in roles if r == "verdict"] == ["2"]


def test_point_and_tie_verdicts():
    assert _roles("Answer: blue is red no. 0/1.\nFinal Score: 1")[-1] == ("1", "score")
    assert _roles("Image 1: two is one no. 0/1.\n0 is the same as 0.\nBoth images are equally good.")[-1] == (
        "Both",
        "verdict",
    )


@pytest.mark.parametrize("task", ["image_generation", "video_understanding"])
def test_every_role_lands_on_answer_tokens_of_world_records(task):
    tokenizer = build_tiny_tokenizer(vocabulary=world_vocabulary())
    record = make_record(WorldConfig(), "val", task, "pair", 1)
    answer = record.rationale + "\nAnswer 1 is better."
    roles = token_roles(tokenizer, answer)
    assert len(roles) == len(tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"])
    counted = {r: roles.count(r) for r in set(roles) - {None}}
    checks = record.rationale.count(" yes") + record.rationale.count(" no")
    assert counted["check"] == checks and counted["tally"] == 2 and counted["verdict"] == 1
    assert counted["compare"] == 3  # the two tallies and how they relate
