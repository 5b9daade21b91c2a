"""The synthetic world's texts and words, for the tiny models' offline tokenizer (`models.tokenizer`)."""

from __future__ import annotations

import functools

from unified_reward.models.tokenizer import TinyVocabulary
from unified_reward.synthetic.scene import COLORS, COUNT_WORDS, MOTIONS, POSITIONS, SHAPES
from unified_reward.synthetic.world import IMAGE_CAPTIONS, QUESTIONS, VIDEO_CAPTIONS


@functools.cache
def world_vocabulary() -> TinyVocabulary:
    """Every question and caption template of the world, every attribute word (plural shapes too), and the words of
    the base's text skills and of the rationale."""
    texts = [q for qs in QUESTIONS.values() for q in qs] + list(IMAGE_CAPTIONS) + list(VIDEO_CAPTIONS)
    words = list(COLORS) + list(SHAPES) + [s + "s" for s in SHAPES] + list(COUNT_WORDS.values())
    words += list(POSITIONS) + list(MOTIONS)
    # the base's text skills and the rationale's comparison of two tallies (skills.TEXT_SKILLS, world.comparison)
    words += ["Text", "text", "Name", "its", "Compare", "with", "Count", "numbers", "and", "of"]
    words += ["count", "colour", "shape", "position", "motion", "less", "more", "than", "same", "as"]
    return TinyVocabulary(tuple(texts), tuple(words))
