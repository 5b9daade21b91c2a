import pytest
import torch

from unified_reward.data.schema import MODES
from unified_reward.data.tasks import TASKS
from unified_reward.encoding.chat import TooLongError
from unified_reward.encoding.policy_pairs import (
    CHOSEN,
    PADDING,
    PROMPT,
    REJECTED,
    PolicyPairCollator,
    answer_ids,
    encode_policy_prompt,
    shared_prompt_mask,
)


def _record(decoded_records, task, mode):
    return decoded_records[TASKS.index(task) * len(MODES) + MODES.index(mode)]


def test_shared_layout_is_prompt_then_chosen_then_rejected(decoded_records, tiny_qwen):
    _, processor = tiny_qwen
    record = _record(decoded_records, "image_understanding", "pair")
    batch = PolicyPairCollator(processor, layout="shared")([record])
    prompt = encode_policy_prompt(processor, record).input_ids
    chosen, rejected = answer_ids(processor, record.chosen), answer_ids(processor, record.rejected)
    assert batch["input_ids"][0].tolist() == prompt + chosen + rejected
    p, c = len(prompt), len(chosen)
    assert batch["segments"][0].tolist() == [PROMPT] * p + [CHOSEN] * c + [REJECTED] * len(rejected)
    assert batch["pixel_values"].shape[0] == batch["image_grid_thw"].prod(-1).sum()  # the image once
    assert batch["targets"][0, 0, :c].tolist() == chosen
    assert batch["target_positions"][0, 0, :c].tolist() == list(range(p - 1, p + c - 1))
    # the rejected answer's first token is predicted from the last prompt token, not from the chosen answer
    assert batch["target_positions"][0, 1, :3].tolist() == [p - 1, p + c, p + c + 1]


def test_separate_layout_repeats_the_media_for_each_answer(decoded_records, tiny_qwen):
    _, processor = tiny_qwen
    record = _record(decoded_records, "video_understanding", "pair")
    shared = PolicyPairCollator(processor, layout="shared")([record])
    separate = PolicyPairCollator(processor, layout="separate")([record])
    assert separate["input_ids"].shape[0] == 2
    assert separate["pixel_values_videos"].shape[0] == 2 * shared["pixel_values_videos"].shape[0]
    assert separate["target_rows"].tolist() == [[0, 1]]


def test_rejected_tokens_cannot_see_the_chosen_answer():
    segments = torch.tensor([[PROMPT, PROMPT, CHOSEN, CHOSEN, REJECTED, REJECTED, PADDING]])
    allowed = shared_prompt_mask(segments)[0, 0]
    assert allowed[4].tolist() == [True, True, False, False, True, False, False]
    assert allowed[5].tolist() == [True, True, False, False, True, True, False]
    assert allowed[3].tolist() == [True, True, True, True, False, False, False]
    assert allowed[6, 6]  # a padding query is never fully masked (its softmax would be NaN)


def test_ties_points_and_generation_records_are_skipped_and_counted(decoded_records, tiny_qwen):
    _, processor = tiny_qwen
    collate = PolicyPairCollator(processor)
    pair = _record(decoded_records, "image_understanding", "pair")
    point = _record(decoded_records, "image_understanding", "point")
    generation = _record(decoded_records, "image_generation", "pair")
    tie = type(pair)(**{**pair.__dict__, "label": "tie", "id": "tie"})
    batch = collate([pair, point, generation, tie])
    assert [r.id for r in batch["records"]] == [pair.id]
    assert batch["skipped"] == {"not_a_pair": 1, "generation_task": 1, "tie": 1}
    assert [r.id for r in batch["questions"]] == [pair.id, point.id, tie.id]  # what the policy is evaluated on
    only_point = collate([point])
    assert only_point["records"] == [] and only_point["questions"] == [point]
    assert collate([generation]) is None
    assert collate.skipped["not_a_pair"] == 2


def test_too_long_pairs_are_skipped_or_raise_in_strict_mode(decoded_records, tiny_qwen):
    _, processor = tiny_qwen
    pair = _record(decoded_records, "image_understanding", "pair")
    batch = PolicyPairCollator(processor, max_length=10)([pair])
    assert batch["records"] == [] and batch["skipped"] == {"too_long": 1}
    with pytest.raises(TooLongError, match=pair.id):
        PolicyPairCollator(processor, max_length=10, strict=True)([pair])
