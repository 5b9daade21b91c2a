import numpy as np
import pytest
import torch
from PIL import Image

from unified_reward.data.schema import VideoClip
from unified_reward.encoding.chat import (
    IGNORE_INDEX,
    TooLongError,
    encode_chat,
    image_patches,
    pad_batch,
    video_patches,
)
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.prompts.templates import DEFAULT_TEMPLATES, load_templates
from unified_reward.synthetic.vocabulary import world_vocabulary


def test_loss_only_on_the_answer_tokens(tiny_qwen, decoded_records):
    _, processor = tiny_qwen
    collator = JudgeCollator(processor, DEFAULT_TEMPLATES)
    batch = collator(decoded_records)
    tokenizer = processor.tokenizer
    for row, record in enumerate(batch["records"]):
        labels = batch["labels"][row]
        answer = tokenizer.decode(labels[labels != IGNORE_INDEX])
        assert answer == collator.answer(record) + tokenizer.eos_token
        # the labelled tokens are exactly the last tokens of the real (unpadded) sequence
        length = int(batch["attention_mask"][row].sum())
        labelled = (labels != IGNORE_INDEX).nonzero().flatten()
        assert labelled.tolist() == list(range(length - len(labelled), length))
        assert torch.equal(batch["input_ids"][row, labelled], labels[labelled])
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_media_tokens_match_the_media_and_their_types(tiny_qwen, decoded_records):
    _, processor = tiny_qwen
    batch = JudgeCollator(processor, DEFAULT_TEMPLATES)(decoded_records)
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert int((batch["input_ids"] == image_id).sum()) == int(batch["image_grid_thw"].prod(-1).sum()) // 4
    assert int((batch["input_ids"] == video_id).sum()) == int(batch["video_grid_thw"].prod(-1).sum()) // 4
    types = batch["mm_token_type_ids"]
    assert torch.equal(types == 1, batch["input_ids"] == image_id)
    assert torch.equal(types == 2, batch["input_ids"] == video_id)
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(-1).sum())


def test_video_patches_follow_the_image_processor_arithmetic(tiny_qwen):
    """A clip of one frame repeated is, patch for patch, that frame as an image (the image processor
    repeats an image over the temporal patch); with two frames, each temporal slice is its frame."""
    _, processor = tiny_qwen
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(2))
    still, grid = video_patches(processor, VideoClip(np.stack([a, a]), np.array([0.0, 0.5])))
    image, image_grid = image_patches(processor, Image.fromarray(a))
    assert grid == image_grid and torch.equal(still, image)
    moving, _ = video_patches(processor, VideoClip(np.stack([a, b]), np.array([0.0, 0.5])))
    per_time = moving.reshape(len(moving), 3, 2, -1)
    image_b, _ = image_patches(processor, Image.fromarray(b))
    assert torch.equal(per_time[:, :, 0], image.reshape(len(image), 3, 2, -1)[:, :, 0])
    assert torch.equal(per_time[:, :, 1], image_b.reshape(len(image_b), 3, 2, -1)[:, :, 0])
    odd, odd_grid = video_patches(processor, VideoClip(np.stack([a, b, a]), np.arange(3) / 2))
    assert odd_grid[0] == 2  # padded with the last frame to a whole temporal patch


def test_too_long_samples_are_skipped_and_counted_or_raise(tiny_qwen, decoded_records):
    _, processor = tiny_qwen
    collator = JudgeCollator(processor, DEFAULT_TEMPLATES, max_length=120)
    batch = collator(decoded_records)
    kept = {r.id for r in batch["records"]}
    assert collator.skipped_too_long == len(decoded_records) - len(kept) > 0
    assert batch["input_ids"].shape[1] <= 120
    assert JudgeCollator(processor, DEFAULT_TEMPLATES, max_length=10)(decoded_records) is None
    with pytest.raises(TooLongError, match="record synthetic-"):
        JudgeCollator(processor, DEFAULT_TEMPLATES, max_length=10, strict=True)(decoded_records)


def test_left_padding_for_generation_keeps_rows_and_token_types_aligned(tiny_qwen, decoded_records):
    _, processor = tiny_qwen
    collator = JudgeCollator(processor, DEFAULT_TEMPLATES)
    encoded = [encode_chat(processor, collator.parts(r), None) for r in decoded_records[:3]]
    right, left = pad_batch(encoded, processor), pad_batch(encoded, processor, left=True)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        assert right["input_ids"][row, :n].tolist() == left["input_ids"][row, -n:].tolist() == e.input_ids
        assert int(left["attention_mask"][row].sum()) == n and left["attention_mask"][row, -1] == 1
    assert torch.equal(
        left["mm_token_type_ids"] == 1, left["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    )


def test_llava_onevision_media_tokens_match_the_models_features(decoded_records):
    """Every record type (two images, two videos, image + question, video + question) through a tiny
    LLaVA-OneVision: the model raises if the placeholder count differs from its packed features."""
    import torch

    from unified_reward.encoding.judge_batches import JudgeCollator
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor
    from unified_reward.prompts.templates import DEFAULT_TEMPLATES

    processor = build_processor("llava_onevision", tiny_vocabulary=world_vocabulary())
    model = build_vlm("llava_onevision", processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}).eval()
    batch = JudgeCollator(processor, DEFAULT_TEMPLATES)(decoded_records)
    assert "mm_token_type_ids" not in batch and batch["image_sizes"].shape[1] == 2
    inputs = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    with torch.no_grad():
        output = model(**inputs)
    assert output.loss is not None and torch.isfinite(output.loss)


@pytest.mark.parametrize("height, width", [(40, 100), (100, 40), (64, 64), (20, 150)])
def test_llava_onevision_anyres_token_count_for_non_square_images(height, width):
    """Several grid resolutions and letterboxed (non-square) images: the count the collator expands the
    placeholder to equals the number of features the model packs."""
    import numpy as np
    import torch
    from PIL import Image

    from unified_reward.encoding.chat import encode_chat, pad_batch
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    processor = build_processor("llava_onevision", tiny_vocabulary=world_vocabulary())
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64], [32, 128], [128, 32]]
    processor.image_processor.image_grid_pinpoints = pinpoints
    model = build_vlm("llava_onevision", processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}).eval()
    model.config.image_grid_pinpoints = pinpoints
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))
    encoded = encode_chat(processor, [{"type": "image", "media": image}, {"type": "text", "text": "What?"}], "It")
    batch = pad_batch([encoded], processor)
    with torch.no_grad():
        model(**batch)  # raises when the placeholder count and the packed features differ


def test_reasoning_target_is_the_rationale_then_the_verdict(tiny_qwen, decoded_records):
    import dataclasses

    _, processor = tiny_qwen
    collate = JudgeCollator(processor, load_templates(None), train_rationale=True)
    pair, point = decoded_records[2], decoded_records[3]  # image understanding pair and point
    assert collate.answer(pair) == pair.rationale + "\n" + (
        "Answer 1 is better." if pair.label == "first" else "Answer 2 is better."
    )
    assert collate.answer(point).startswith(point.rationale + "\nFinal Score: ")
    # an official answer already ends with its verdict: it is the whole target, never followed by a second verdict
    official = dataclasses.replace(pair, rationale="Answer 1 is more accurate.\nOverall Judgment: Answer 1 is better.")
    assert collate.answer(official) == official.rationale


def test_official_templates_train_on_their_own_scale_and_wording(tiny_qwen, decoded_records):
    import dataclasses

    from unified_reward.data.schema import PointLabel

    _, processor = tiny_qwen
    collate = JudgeCollator(processor, load_templates("official"))
    point = dataclasses.replace(decoded_records[3], label=PointLabel(3.0, 1.0, 5.0))  # image understanding
    assert collate.answer(point) == "Final Score: 50"  # 3 on 1-5 asked on 0-100
    assert "From 0 to 100" in "".join(p.get("text", "") for p in collate.parts(point))
    pair = decoded_records[6]  # video understanding pair
    assert collate.answer(pair).startswith("Overall Judgment: Answer ")
    tie = dataclasses.replace(pair, label="tie")
    with pytest.raises(ValueError, match="labelled 'tie', but the video_understanding_pair template has no such"):
        collate.answer(tie)
