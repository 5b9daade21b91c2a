"""Answer strings of the official checkpoints, their training data and their scripts, each with the verdict a
careful reader takes from it. Sources (UR = github.com/CodeGoat24/UnifiedReward, snapshot ff6f520, 2026-06):
figures are transcribed (`...` marks text left out, never inside a verdict); "3P" marks a form seen in
third-party code only; "ours" marks a form the issue names that no public output showed verbatim."""

import pytest

from unified_reward.prompts.parsing import parse_pair, parse_score, parse_two_scores

THINK_IMAGE_UND = (  # UR docs/static/images/think/vision_understanding_case.png (literal backslash-n as shown)
    "<think>\n1. Semantic accuracy:\n - Answer 1 (9/10): Accurately describes ... \n - Answer 2 (6/10): Incorrectly "
    "mentions ... 3. Clarity: ... Total score: Answer 1: 9+8+8=26\\nAnswer 2: 6+5+7=18</think>\n"
    "<answer>Answer 1 is better</answer>"
)

PAIR = [
    # LLaVA-Critic blog (github.com/LLaVA-VL/blog, 2024-10-03-llava-critic/static/images/critic_example_pairwise.png)
    (
        "Response 2 is better than Response 1 because it accurately identifies the image as a handwritten number "
        "seven. Response 1 incorrectly describes ... This makes Response 2 more helpful and accurate for "
        "understanding what the image presents.",
        "second",
    ),
    (  # same figure, the LLaVA-OV-7B baseline's answer
        "Response 1 is better because it accurately describes the image as a simple and straightforward "
        "representation of a cross shape, ...",
        "first",
    ),
    (  # LLaVA-Critic blog, example_critic_data.png: training pair with A/B names; "Both responses mention" is no tie
        "Response B is better than response A because it provides a more accurate description of the objects and "
        "their attributes in the image. ... Both responses mention the potted plants and the park setting, but "
        "Response B's accuracy ...",
        "second",
    ),
    # 3P: LLaVA-Critic pairwise verdicts as matched by evaluation scripts of lmms-lab/llava-critic-7b and
    # converters of lmms-lab/llava-critic-113k
    ("The better response: [1].", "first"),
    ("The better response: [2].", "second"),
    ("The better response: [2] because it names the colour correctly.", "second"),
    ("The better answer: [first]", "first"),
    ("The better answer: [second]", "second"),
    ("The better response: [B]", "second"),
    ("Two responses are equally good.", "tie"),
    ("My final verdict is [[A>B]].", "first"),
    ("My final verdict is [[B>>A]].", "second"),
    ("My final verdict is [[A=B]].", "tie"),
    # UR docs/static/images/think/teaser.png: the base UnifiedReward's answer
    ("Image 1 is better", "first"),
    # UnifiedReward-Think outputs (UR docs/static/images/think/*.png)
    (THINK_IMAGE_UND, "first"),
    (  # vision_understanding_case.png, the video-understanding half
        "<think>... Total score: Answer 1: 8+7+8=23\\nAnswer 2: 9+9+9=27</think>\n<answer>Answer 2 is better</answer>",
        "second",
    ),
    (  # more_image_generation_case.png
        "<think>... Total score:\nImage 1: 9+8+9=26\nImage 2: 8+7+7=22\n</think>\n<answer>Image 1 is better</answer>",
        "first",
    ),
    (  # more_image_understanding_case.png
        "<think>... Answer 1 (8/10) - Correctly describes ... Total score:\nAnswer 1: 8+7+9=24\nAnswer 2: 6+5+8=19\n"
        "</think>\n<answer>Answer 1 is better</answer>",
        "first",
    ),
    (  # more_video_understanding_case.png
        "<think>... - Answer 2 (10/10): This answer is also factually correct ... Total score:\nAnswer 1: 8+9+8=25\n"
        "Answer 2: 9+10+9=28\n</think>\n<answer>Answer 2 is better</answer>",
        "second",
    ),
    (  # video_generation_case.png
        "<think>... Total score:Video 1: 7+8+8=23\nVideo 2: 9+9+9=27</think>\n<answer>Video 2 is better</answer>",
        "second",
    ),
    (  # vision_generation_case.png
        "<think>... 3. Authenticity:\n - Image 1 (6/10): ... Total score:\n Image 1: 7+8+6=21\n Image 2: 9+9+9=27\n"
        "</think>\n<answer>Image 2 is better</answer>",
        "second",
    ),
    (  # more_video_generation_case.png
        "<think>... Total score:\nVideo 1: 5+4+6=15\nVideo 2: 9+9+9=27\n</think>\n<answer>Video 2 is better</answer>",
        "second",
    ),
    (  # gradio_case.png: four dimensions, one self-added
        "<think>... 4. Emotional impact: ... Total score:\nVideo 1: 9+8+9+9=35\nVideo 2: 8+7+8+8=31</think>\n"
        "<answer>Video 1 is better</answer>",
        "first",
    ),
    (  # UR UnifiedReward-Think/inference_qwen/image_generation/qwen_infer_cot_image_generation.py, the prompt's
        # example output: a tie on one aspect, then the verdict
        "<think>\n1. Semantic consistency: Image 1 (9/10) - ...; Image 2 (7/10) - ...\n2. Aesthetics: Image 2 (8/10) "
        "- ...; Image 1 (8/10) - ...\n3. Authenticity: Image 1 (8/10) - ...; Image 2 (5/10) - ...\nTotal score:\n"
        "Image 1: 9+8+8+6=31\nImage 2: 7+8+5+8=28\n</think>\n<answer>Image 1 is better</answer>",
        "first",
    ),
    (  # the video version of that prompt's example
        "<think>...\nTotal score:\nVideo 1: 9+8+7+6=30\nVideo 2: 7+6+5+8=26\n</think>\n"
        "<answer>Video 1 is better</answer>",
        "first",
    ),
    # UR inference_qwen/video_understanding/qwen_pair_rank_video_understanding.py, the prompt's example
    ("Overall Judgment: Answer 1 is better than Answer 2.", "first"),
    # UR preference_data_construction/image_understanding/infer+sift.py, the prompt's placeholder: no verdict
    ("Overall Judgment: Answer X is better.", None),
    # the answer wordings the official prompts ask for (UR inference_qwen/*, inference_llava/*)
    ("Image 2 is better.", "second"),
    ("Both images are equally good.", "tie"),
    ("Image 1 is better than Image 2.", "first"),  # inference_llava/image_generation/pair_rank_image_generation.py
    ("Image 2 is better than Image 1.", "second"),
    ("Video 1 is better,", "first"),  # qwen_pair_rank_video_generation.py: "such as 'Video 1 is better,' ..."
    ("Video 2 is better than Video 1.", "second"),  # inference_llava/video_generation/pair_rank_video_generation.py
    ("Both videos are equally good.", "tie"),
    ("Answer 2 is better.", "second"),  # qwen_pair_rank_image_understanding.py
    # GRPO solutions (UR UnifiedReward-Think/README.md) and benchmark gold strings (UR benchmark_evaluation/*)
    ("Video 2 is better", "second"),
    ("Answer 1 is better", "first"),
    # ours: forms the issue names, not seen verbatim in a public output
    ("Image 1 is slightly better than Image 2.", "first"),
    ("**Image 2** is better.", "second"),
    ("**Answer 1 is better.**", "first"),
    (
        "Overall Judgment: Answer 2 is better than Answer 1. Answer 1 mentions both squares, but Answer 1 is "
        "better at counting them.",
        "second",
    ),
    (
        "Aesthetics: both images are equally good.\nAlignment: Image 2 shows the dog.\nImage 2 is better overall.",
        "second",
    ),
    ("Image 2 is much worse than Image 1.", "first"),
    # contradictions and non-answers stay invalid
    ("Image 1 is better in colour, but Image 2 is better in layout.", None),
    ("Final", None),  # UR issue #6: a 4-bit UnifiedReward-7b-v1.5 answered only this
]


@pytest.mark.parametrize("text, verdict", PAIR)
def test_pair_verdicts_of_the_official_forms(text, verdict):
    assert parse_pair(text).verdict == verdict


SCORES = [
    # LLaVA-Critic blog example_critic_data.png: caption rating on 0-100, a period after the number
    ("The text caption provides a generally accurate description of the image. ... Final Score: 85.", (0, 100), 85.0),
    ("The text caption ... Final Score: 85.", (1, 5), None),  # the same number asked on 1-5 is out of scale
    # github.com/CodeGoat24/UnifiedReward/issues/44 (UnifiedReward-qwen-7b, video point, asked 1-10)
    (
        "visual quality: 3\n temporal consistency: 2\n dynamic degree: 3\n text-to-video alignment: 3\n factual "
        "consistency: 3\n Final Score: 3.0",
        (1, 10),
        3.0,
    ),
    (  # same issue, the user asked "from 5 to 10": 2.67 lies outside the scale asked for
        "visual quality: 2\n temporal consistency: 2\n dynamic degree: 3\n text-to-video alignment: 3\n factual "
        "consistency: 3\n Final Score: 2.67",
        (5, 10),
        None,
    ),
    # github.com/CodeGoat24/UnifiedReward/issues/49
    (
        "visual quality: 3\n temporal consistency: 3\n dynamic degree: 3\n text-to-video alignment: 3\n factual "
        "consistency: 3\nFinal Score: 8",
        (1, 10),
        8.0,
    ),
    (
        "visual quality: 2\n temporal consistency: 2\n dynamic degree: 3\n text-to-video alignment: 2\n factual "
        "consistency: 3\nFinal Score: 5\n",
        (1, 10),
        5.0,
    ),
    # UR qwen_point_score_video_generation.py, the prompt's example output
    (
        "visual quality: 4\ntemporal consistency: 4\ndynamic degree: 3\ntext-to-video alignment: 1\nfactual "
        "consistency: 2\nFinal Score: 6",
        (1, 10),
        6.0,
    ),
    ("Final", (1, 5), None),  # UR issue #6
    ("Final Score: nan", (1, 5), None),
    ("**Final Score:** 4", (1, 5), 4.0),  # ours: markdown around the marker
    ("**Final Score**: 4", (1, 5), 4.0),
    ("Final Score: 0", (1, 5), None),
    ("Final Score: 100", (0, 100), 100.0),
]


@pytest.mark.parametrize("text, scale, score", SCORES)
def test_scores_of_the_official_forms_within_the_scale_asked(text, scale, score):
    judgment = parse_score(text, scale)
    assert judgment.score == score
    assert judgment.out_of_scale is (score is None and "Final Score: " in text and "nan" not in text)


@pytest.mark.parametrize(
    "text, scores",
    [
        # LLaVA-Critic blog critic_example_pointwise.png (LLaVA-bench: line 1 scores Assistant 1 and 2 on 1-10)
        (
            "10 9\nAssistant 1 provided a detailed and accurate description ... Therefore, Assistant 2 receives a "
            "slightly lower score.",
            (10.0, 9.0),
        ),
        (
            "10 9\nAssistant 1 provided a clear and detailed description ... Overall, both assistants performed well "
            "in their responses, but Assistant 1 provided a slightly more detailed and comprehensive response, which "
            "is why it receives a score of 10, while Assistant 2 receives a score of 9.",
            (10.0, 9.0),
        ),
        ("Image 1 is better.", None),
    ],
)
def test_two_scores_of_llava_bench_answers(text, scores):
    assert parse_two_scores(text) == scores


def test_the_table_holds_at_least_40_sourced_strings():
    assert len(PAIR) + len(SCORES) + 2 >= 40 + 7  # 7 strings of the tables are ours (marked), not sourced
