import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from unified_reward.data.schema import VideoClip
from unified_reward.synthetic import oracle
from unified_reward.synthetic.scene import read_attributes, values_of
from unified_reward.synthetic.skills import (
    MEDIA_SKILLS,
    PROBE_CLASSES,
    SKILL_WEIGHTS,
    SKILLS,
    TEXT_SKILLS,
    SkillCollator,
    SkillStream,
    TextLead,
    held_out_examples,
    make_example,
    tokens_per_image,
)
from unified_reward.synthetic.vocabulary import world_vocabulary

JUDGE_WORDS = ("better", "equally", "score", "answer 1", "answer 2", "image 2", "video 2")


@pytest.mark.parametrize("kind", ["image", "video"])
@pytest.mark.parametrize("skill", SKILLS)
def test_examples_teach_generic_skills_and_never_judging(skill, kind):
    rng = np.random.default_rng(0)
    for _ in range(20):
        example = make_example(rng, skill, kind)
        text = (example.question + " " + example.answer).lower()
        if skill != "describe_two":  # two media are named "Image 1 / Image 2" when described together
            assert not any(word in text for word in JUDGE_WORDS), text
        assert "better" not in text and "score" not in text
        media = example.media
        assert len(media) == (2 if skill == "describe_two" else 0 if skill in TEXT_SKILLS else 1)
        assert all(isinstance(m, VideoClip) for m in media) if kind == "video" else True
        if skill == "describe":
            # the answer states what the oracle reads from the pixels, and `check` agrees with itself
            seen = oracle.perceive(media[0])
            assert all(example.check(example.answer).values())
            assert oracle.score_generation(example.answer.split(" shows ", 1)[1], media[0]).score == 5.0, seen
        if skill == "verify":
            assert example.answer in ("Yes.", "No.")


def test_skill_weights_cover_every_skill():
    assert len(SKILL_WEIGHTS) == len(SKILLS) == len(MEDIA_SKILLS) + len(TEXT_SKILLS)
    assert sum(SKILL_WEIGHTS) == pytest.approx(1.0)


def test_text_skills_state_what_their_texts_say():
    """Each text skill's answer, recomputed from its question alone with the world's own reader."""
    rng = np.random.default_rng(2)
    names = {"count": "count", "colour": "color", "shape": "shape", "position": "position", "motion": "motion"}
    for _ in range(40):
        for kind in ("image", "video"):
            extract = make_example(rng, "extract", kind)
            text, asked = extract.question.removeprefix("Text: ").split("\nName its ")
            stated = read_attributes(text, kind)
            wanted = [names[a] for a in asked.rstrip(".").split(", ")]
            expected = [{1: "one", 2: "two", 3: "three"}.get(stated[a], stated[a]) for a in wanted]
            assert extract.answer == ", ".join(expected) + "."

            words = make_example(rng, "compare_words", kind)
            pairs = [p.split(" with ") for p in words.question.removeprefix("Compare ").rstrip(".").split(", ")]
            assert words.answer == ", ".join(f"{a} is {b} {'yes' if a == b else 'no'}" for a, b in pairs) + "."

            count = make_example(rng, "count_yes", kind)
            said = count.question.removeprefix("Count the yes: ").rstrip(".").split(", ")
            assert count.answer == f"{said.count('yes')}/{len(said)}."

            texts = make_example(rng, "compare_texts", kind)
            first, second, asked = texts.question.split("\n")
            one = read_attributes(first.removeprefix("Text 1: "), kind)
            two = read_attributes(second.removeprefix("Text 2: "), kind)
            wanted = [names[a] for a in asked.removeprefix("Compare the ").split(" of text 1")[0].split(", ")]
            hits = [one[a] == two[a] for a in wanted]
            assert texts.answer.endswith(f" {sum(hits)}/{len(hits)}.")
            assert [item.endswith(" yes") for item in texts.answer.rsplit(".", 2)[0].split(", ")] == hits

            numbers = make_example(rng, "compare_numbers", kind)
            a, b = (int(n) for n in numbers.question.removeprefix("Compare the numbers ").rstrip(".").split(" and "))
            relation = "less than" if a < b else "more than" if a > b else "the same as"
            assert numbers.answer == f"{a} is {relation} {b}."


def test_verify_answers_are_balanced_and_true():
    rng = np.random.default_rng(1)
    examples = [make_example(rng, "verify", "image") for _ in range(200)]
    yes = sum(e.answer == "Yes." for e in examples)
    assert 70 < yes < 130
    for e in examples[:40]:
        question = e.question.lower().rstrip("?")
        scene = e.scenes[0]
        words = {str(v) for v in (scene.color, scene.shape, scene.position)} | {
            ["one", "two", "three"][scene.count - 1]
        }
        stated_true = any(w in question.split() or w + "s" in question.split() for w in words)
        assert (e.answer == "Yes.") == stated_true, (e.question, scene)


def test_check_reads_each_attribute_of_a_description():
    example = held_out_examples(seed=0, per_kind=1)[0]
    scene = example.scenes[0]
    assert example.check(example.answer) == {a: True for a in scene.attributes}
    wrong_colour = next(c for c in values_of("color") if c != scene.color)
    checked = example.check(example.answer.replace(f" {scene.color} ", f" {wrong_colour} "))
    assert checked["color"] is False and sum(checked.values()) == 3


def test_stream_is_seeded_and_collates_with_probe_targets():
    from unified_reward.models.processor import build_processor

    first = [e.answer for e in next(iter(SkillStream(3, batch_size=12)))]
    again = [e.answer for e in next(iter(SkillStream(3, batch_size=12)))]
    other = [e.answer for e in next(iter(SkillStream(4, batch_size=12)))]
    assert len(first) == 12 and first == again and first != other
    processor = build_processor("qwen2_vl", min_pixels=12544, max_pixels=12544, tiny_vocabulary=world_vocabulary())
    assert tokens_per_image(processor) == 16
    examples = next(iter(SkillStream(0, batch_size=16)))
    batch = SkillCollator(processor)(examples)
    for kind, tokens in (("image", 16), ("video", 64)):
        scenes = [s for e in examples if e.kind == kind for s in e.scenes]
        probe = batch[f"probe_{kind}"]
        assert probe["grid_thw"].shape[0] == len(scenes) > 0
        assert int(probe["grid_thw"].prod(-1).sum()) // 4 == tokens * len(scenes)  # 2x2 patches merge into a token
        for name in PROBE_CLASSES[kind]:
            expected = torch.tensor([values_of(name).index(s.value(name)) for s in scenes])
            assert torch.equal(probe["targets"][name], expected)
    answered = (batch["labels"] != -100).sum(1)
    assert bool((answered > 0).all())


def test_text_lead_adds_text_examples_to_the_first_steps_counted_across_workers():
    from unified_reward.models.processor import build_processor

    lead = TextLead(steps=5, batch_size=6, words_steps=2)
    loader = DataLoader(SkillStream(0, batch_size=4, lead=lead), batch_size=None, num_workers=2)
    batches = [b for b, _ in zip(loader, range(8), strict=False)]  # steps 0..7, the two workers in turn
    assert [len(b) for b in batches] == [10] * 5 + [4] * 3
    for step, batch in enumerate(batches[:5]):
        extra = [e.skill for e in batch[4:]]
        assert all(s == "compare_words" for s in extra) if step < 2 else all(s in TEXT_SKILLS for s in extra)
    assert any(s != "compare_words" for b in batches[2:5] for s in (e.skill for e in b[4:]))
    processor = build_processor("qwen2_vl", min_pixels=12544, max_pixels=12544, tiny_vocabulary=world_vocabulary())
    batch = SkillCollator(processor)(batches[0])
    texts = [e for e in batches[0] if e.skill in TEXT_SKILLS]
    assert batch["text"]["input_ids"].shape[0] == len(texts) >= 6
    assert "pixel_values" not in batch["text"]  # the language model alone, no media
