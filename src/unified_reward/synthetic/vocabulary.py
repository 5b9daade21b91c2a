"""The synthetic world's texts and words, for the tiny models' offline tokenizer (`models.tokenizer`)."""

from __future__ import annotations

import functools

from unified_reward.models.tokenizer import TinyVocabulary
from unified_reward.synthetic.scene import COLORS, COUNT_WORDS, MOTIONS, POSITIONS, SHAPES
from unified_reward.synthetic.world import IMAGE_CAPTIONS, QUESTIONS, VIDEO_CAPTIONS


@functools.cache
def world_vocabulary() -> TinyVocabulary:
    """Every question and caption template of the world, and every attribute word (plural shapes too)."""
    texts = [q for qs in QUESTIONS.values() for q in qs] + list(IMAGE_CAPTIONS) + list(VIDEO_CAPTIONS)
    words = list(COLORS) + list(SHAPES) + [s + "s" for s in SHAPES] + list(COUNT_WORDS.values())
    words += list(POSITIONS) + list(MOTIONS)
    return TinyVocabulary(tuple(texts), tuple(words))
