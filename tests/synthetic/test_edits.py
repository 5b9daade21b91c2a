"""Edit instructions read back to what they ask for, on every source scene and change; the world's edit records
labelled as the oracle reads their pixels, and the paper's tasks untouched by a world that also holds edits."""

import dataclasses
import itertools

import numpy as np
import pytest

from unified_reward.data.media import VideoSampling, decode_media
from unified_reward.synthetic.edits import EDITABLE, apply_instruction, instructed_change, instruction
from unified_reward.synthetic.oracle import score_edit
from unified_reward.synthetic.scene import COLORS, COUNTS, POSITIONS, SHAPES, Scene, values_of
from unified_reward.synthetic.world import WorldConfig, make_record


def test_every_instruction_asks_for_its_target():
    rng = np.random.default_rng(0)
    covered = set()
    for count, color, shape, position in itertools.product(COUNTS, COLORS, SHAPES, POSITIONS):
        source = Scene("image", count, color, shape, position)
        for attribute in EDITABLE:
            others = [v for v in values_of(attribute) if v != source.value(attribute)]
            for target in (dataclasses.replace(source, **{attribute: v}) for v in others):
                for _ in range(3):  # each wording
                    text = instruction(source, target, attribute, rng)
                    read = {a: source.value(a) for a in EDITABLE}
                    assert apply_instruction(text, read) == {a: target.value(a) for a in EDITABLE}, text
                    covered.add((source, target))
    assert len(covered) == 4 * 3 * 3 * 3 * (2 + 3 + 2 + 2)  # every source scene, every other value of each attribute


def test_an_instruction_the_world_does_not_speak_is_refused():
    assert instructed_change("add two circles") == ("count", 2)
    assert instructed_change("remove one square") == ("count", -1)
    with pytest.raises(ValueError, match="not an edit instruction"):
        instructed_change("make it nicer")


def test_edit_records_are_labelled_as_the_oracle_reads_them():
    world = WorldConfig(seed=4, tasks=("image_editing",))
    sampling = VideoSampling(num_frames=8)
    labels = []
    for mode, index in itertools.product(("pair", "point"), range(40)):
        record = make_record(world, "test", "image_editing", mode, index)
        source = decode_media(record.context, sampling)
        scores = [score_edit(record.prompt, source, decode_media(c, sampling)).score for c in record.candidates]
        assert scores == record.meta["scores"]
        lines = record.rationale.split("\n")
        assert lines[0].startswith("The source image shows ") and lines[1].startswith("The edit asks for ")
        labels.append(record.label if mode == "pair" else None)
    assert {"first", "second", "tie"} <= set(labels)


def test_the_paper_tasks_records_and_cache_do_not_change_with_editing_in_the_world():
    four, five = WorldConfig(seed=1), WorldConfig(seed=1, tasks=(*WorldConfig().tasks, "image_editing"))
    assert four.fingerprint() == WorldConfig(seed=1, tasks=list(WorldConfig().tasks)).fingerprint()
    assert four.fingerprint() != five.fingerprint()
    for task in four.tasks:
        a, b = make_record(four, "val", task, "pair", 3), make_record(five, "val", task, "pair", 3)
        assert (a.prompt, a.label, a.rationale, a.candidates) == (b.prompt, b.label, b.rationale, b.candidates)
