import pytest

from unified_reward.models.tokenizer import build_tiny_tokenizer
from unified_reward.synthetic.scene import COLORS, COUNT_WORDS, MOTIONS, POSITIONS, SHAPES
from unified_reward.synthetic.vocabulary import world_vocabulary

WORLD_WORDS = [*COLORS, *SHAPES, *(s + "s" for s in SHAPES), *COUNT_WORDS.values(), *POSITIONS, *MOTIONS]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(vocabulary=world_vocabulary())


@pytest.mark.parametrize("word", WORLD_WORDS)
def test_every_attribute_word_is_one_token_after_a_space(tokenizer, word):
    # a colour read as " re" + "d" is a harder word for a tiny judge to tie to the pixels it sees
    assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1


def test_digits_are_split_one_by_one_and_texts_round_trip(tokenizer):
    pieces = [tokenizer.decode([i]) for i in tokenizer("Final Score: 3.67", add_special_tokens=False)["input_ids"]]
    assert pieces[-4:] == ["3", ".", "6", "7"]
    text = "There are two red circles on the left.\nAnswer 1 is better."
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_training_is_deterministic():
    assert (
        build_tiny_tokenizer(vocabulary=world_vocabulary()).get_vocab()
        == build_tiny_tokenizer(vocabulary=world_vocabulary()).get_vocab()
    )
