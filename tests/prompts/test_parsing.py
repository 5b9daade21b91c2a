import pytest

from unified_reward.prompts.parsing import parse_pair, parse_score, verdict_start

PAIR_ANSWERS = [
    ("Image 1 is better.", "first"),
    ("Image 2 is better.", "second"),
    ("Image 1 is better than Image 2.", "first"),
    ("Video 2 is better than Video 1.", "second"),
    ("Answer 1 is better.", "first"),
    ("Overall Judgment: Answer 2 is better than Answer 1.", "second"),
    (
        "1. Accuracy: Answer 1 is better on colour.\n2. Clarity: Answer 2 is better.\n"
        "Overall Judgment: Answer 1 is better.",
        "first",
    ),
    ("Both images are equally good.", "tie"),
    ("Both videos are equally good.", "tie"),
    (
        "<think>Image 1 misses the dog; Image 2 is better aligned.</think><answer>Image 2 is better.</answer>",
        "second",
    ),
    (
        "<think>Answer 1 is better? no.</think>\n<answer>Overall Judgment: Answer 2 is better.</answer>",
        "second",
    ),
    ("overall judgement: response 1 is preferred", "first"),
    ("IMAGE 2 IS BETTER", "second"),
    # invalid: never a default winner
    ("", None),
    ("I cannot decide.", None),
    ("Image 1 is better in colour, but Image 2 is better in layout.", None),
    ("Image 3 is better.", None),
    ("Image 1 is worse.", None),
    ("<think>Image 1 is better.</think><answer></answer>", None),
    ("Final Score: 4", None),
]


@pytest.mark.parametrize("text, verdict", PAIR_ANSWERS)
def test_pair_verdicts(text, verdict):
    judgment = parse_pair(text)
    assert judgment.verdict == verdict
    assert judgment.valid is (verdict is not None)


SCORE_ANSWERS = [
    ("Final Score: 4", 4.0),
    ("Final Score: 7.5", 7.5),
    ("The image matches well. Final Score: 10", 10.0),
    ("final score:3.25", 3.25),
    ("Final Score: **4**", 4.0),
    ("Final Score: 2\nOn reflection, Final Score: 3", 3.0),
    ("<think>Final Score: 1 would be harsh.</think><answer>Final Score: 4.5</answer>", 4.5),
    ("Final Score: 09", 9.0),
    ("", None),
    ("Score: 4", None),
    ("Final Score: N/A", None),
    ("Image 1 is better.", None),
]


@pytest.mark.parametrize("text, score", SCORE_ANSWERS)
def test_scores(text, score):
    judgment = parse_score(text)
    assert judgment.score == score
    assert judgment.valid is (score is not None)


def test_scores_compare_as_numbers_not_strings():
    assert parse_score("Final Score: 10").score > parse_score("Final Score: 9").score


REASONED = (
    "Image 1 shows two red squares on the left.\nImage 2 shows two red circles on the left.\n"
    "Image 1: two is two yes, red is red yes, square is circle no, left is left yes. 3/4.\n"
    "Image 2: two is two yes, red is red yes, circle is circle yes, left is left yes. 4/4."
)


@pytest.mark.parametrize(
    "text, verdict",
    [
        (REASONED + "\nImage 2 is better.", "second"),
        (REASONED + "\nBoth images are equally good.", "tie"),
        (
            "The video shows one blue square moving up.\nAnswer 1: up is up yes. 1/1.\nAnswer 2: down is up no. 0/1.\n"
            "Answer 1 is better.",
            "first",
        ),
        ("<think>" + REASONED + "</think><answer>Image 2 is better.</answer>", "second"),
        (REASONED, None),  # the rationale without its verdict line
        (REASONED + "\nImage", None),  # cut off inside the verdict
    ],
)
def test_reasoning_answers(text, verdict):
    assert parse_pair(text).verdict == verdict


def test_reasoned_scores():
    text = (
        "The image shows one red square in the middle.\n"
        "Image: one is one yes, red is red yes, square is circle no, middle is middle yes. 3/4."
    )
    assert parse_score(text + "\nFinal Score: 4").score == 4.0
    assert parse_score(text).score is None


@pytest.mark.parametrize(
    "text, start",
    [
        ("line one\nline two\nImage 1 is better.", len("line one\nline two\n")),
        ("rationale\nImage 1 is better.\n", len("rationale\n")),  # a trailing line break is not the verdict
        ("<think>a\nb</think><answer>Image 2 is better.</answer>", len("<think>a\nb</think><answer>")),
        ("Image 1 is better.", None),  # no rationale line: the verdict was never separated
        ("", None),
    ],
)
def test_verdict_start(text, start):
    assert verdict_start(text) == start
