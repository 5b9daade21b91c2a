"""Chat content -> model inputs, for the judge (`judge_batches`) and VLM policies (`policy_pairs`) alike.

`encode_chat` turns chat content parts (text, images, videos) plus an optional answer into token
ids, labels (-100 everywhere but the answer tokens), `mm_token_type_ids` (0 text, 1 image,
2 video; Qwen) and the media tensors, expanding each media placeholder to the number of tokens its
media takes. Videos become Qwen2-VL patches from their frames with the image processor's own
arithmetic, or LLaVA-OneVision frames at the base tile size (no torchvision needed). A sample
longer than `max_length` is never cut (a cut would go through media tokens): it is skipped and
counted, or raises in strict mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from unified_reward.data.schema import VideoClip
from unified_reward.models.processor import VLMProcessor

IGNORE_INDEX = -100


class TooLongError(ValueError):
    pass


@dataclass
class EncodedChat:
    input_ids: list[int]
    labels: list[int]
    pixel_values: list[torch.Tensor] = field(default_factory=list)
    image_grid_thw: list[list[int]] = field(default_factory=list)
    pixel_values_videos: list[torch.Tensor] = field(default_factory=list)
    video_grid_thw: list[list[int]] = field(default_factory=list)
    image_sizes: list[list[int]] = field(default_factory=list)  # LLaVA-OneVision: (height, width) per image


def image_patches(processor: VLMProcessor, image: Image.Image) -> tuple[torch.Tensor, list[int]]:
    out = processor.image_processor(images=[image], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"][0].tolist()


def video_patches(processor: VLMProcessor, clip: VideoClip) -> tuple[torch.Tensor, list[int]]:
    """Qwen2-VL video patches: each frame through the image processor (which repeats it over the
    temporal patch), then consecutive frames paired along the temporal axis of each patch."""
    image_processor = processor.image_processor
    temporal = image_processor.temporal_patch_size
    frames = list(clip.frames)
    if len(frames) % temporal:
        frames += [frames[-1]] * (temporal - len(frames) % temporal)
    out = image_processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
    _, grid_h, grid_w = out["image_grid_thw"][0].tolist()
    per_frame = out["pixel_values"].reshape(len(frames), grid_h * grid_w, 3, temporal, -1)[:, :, :, 0]
    groups = per_frame.reshape(len(frames) // temporal, temporal, grid_h * grid_w, 3, -1)
    patches = groups.permute(0, 2, 3, 1, 4).reshape(len(frames) // temporal * grid_h * grid_w, -1)
    return patches, [len(frames) // temporal, grid_h, grid_w]


def _llava_image(processor: VLMProcessor, image: Image.Image) -> tuple[torch.Tensor, list[int], int]:
    """LLaVA-OneVision "anyres": the base tile plus the tiles of the best grid resolution; the image takes the
    base tile's tokens, plus the tiles' tokens with the letterbox padding removed and one newline per row,
    shrunk when they exceed the anyres_max_N cap (the arithmetic of the model's feature packing)."""
    from transformers.image_processing_utils import select_best_resolution

    out = processor.image_processor(images=[image], return_tensors="pt")
    height, width = image.height, image.width
    side = int(math.isqrt(processor.tokens_per_tile))
    tile = out["pixel_values"].shape[-1]
    best_height, best_width = select_best_resolution([height, width], processor.image_processor.image_grid_pinpoints)
    rows, columns = side * (best_height // tile), side * (best_width // tile)
    if width / height > columns / rows:  # wider than the grid: rows of padding above and below
        rows -= 2 * ((rows - int(round(height * columns / width, 7))) // 2)
    else:
        columns -= 2 * ((columns - int(round(width * rows / height, 7))) // 2)
    cap = int(processor.vision_aspect_ratio.removeprefix("anyres_max_"))
    shrink = math.sqrt(rows * columns / (cap * side**2))
    if shrink > 1.1:
        rows, columns = int(rows // shrink), int(columns // shrink)
    tokens = processor.tokens_per_tile + rows * columns + rows
    return out["pixel_values"][0], [height, width], tokens


def _llava_video(processor: VLMProcessor, clip: VideoClip) -> tuple[torch.Tensor, int]:
    """LLaVA-OneVision video: every frame resized to one base tile; each frame's tokens are pooled 2x2, plus one
    newline for the whole video."""
    image_processor = processor.image_processor
    side = image_processor.size["height"]
    frames = np.stack([np.asarray(Image.fromarray(f).resize((side, side), Image.BICUBIC)) for f in clip.frames])
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std).view(1, 3, 1, 1)
    pooled = math.ceil(math.isqrt(processor.tokens_per_tile) / 2)
    return (pixels - mean) / std, len(frames) * pooled * pooled + 1


def _media_input(processor: VLMProcessor, part: dict[str, Any]) -> tuple[torch.Tensor, list[int], int]:
    """One media part's pixel tensor, its grid (Qwen) or (height, width) (LLaVA-OneVision images; [] for its
    videos), and how many placeholder tokens it takes."""
    if not processor.spec.grid_media:
        if part["type"] == "image":
            return _llava_image(processor, part["media"])
        frames, count = _llava_video(processor, part["media"])
        return frames, [], count
    merge = getattr(processor.image_processor, "merge_size", 1) ** 2  # Qwen merges 2x2 patches into a token
    patches, grid = (image_patches if part["type"] == "image" else video_patches)(processor, part["media"])
    return patches, grid, int(np.prod(grid)) // merge


def encode_chat(
    processor: VLMProcessor,
    parts: list[dict[str, Any]],
    answer: str | None,
    *,
    max_length: int | None = None,
    media_memo: dict | None = None,
) -> EncodedChat:
    """Token ids for one user turn and (optionally) the assistant answer, labelled for SFT. `media_memo`: a dict
    the caller keeps while the media objects live (one judge call), so a medium shown in many prompts (a candidate
    set's context) is processed once."""
    tokenizer = processor.tokenizer
    chat_parts = [{"type": p["type"], "text": p.get("text", "")} for p in parts]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": chat_parts}], tokenize=False, add_generation_prompt=True
    )
    encoded = EncodedChat([], [])
    token_counts: dict[int, list[int]] = {image_id(processor): [], video_id(processor): []}
    for part in parts:
        if part["type"] not in ("image", "video"):
            continue
        key = (part["type"], id(part["media"]))
        media = media_memo.get(key) if media_memo is not None else None
        if media is None:
            media = _media_input(processor, part)
            if media_memo is not None:
                media_memo[key] = media
        pixels, shape, count = media
        if part["type"] == "image":
            encoded.pixel_values.append(pixels)
            (encoded.image_grid_thw if processor.spec.grid_media else encoded.image_sizes).append(shape)
            token_counts[image_id(processor)].append(count)
        else:
            encoded.pixel_values_videos.append(pixels)
            if processor.spec.grid_media:
                encoded.video_grid_thw.append(shape)
            token_counts[video_id(processor)].append(count)
    prompt_ids: list[int] = []
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        # each media placeholder stands for as many tokens as its media takes, in order
        prompt_ids.extend([token] * token_counts[token].pop(0) if token in token_counts else [token])
    if any(token_counts.values()):
        raise ValueError("the chat template dropped media placeholders; check the tokenizer's chat template")
    answer_ids = (
        [] if answer is None else tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    )
    encoded.input_ids = prompt_ids + answer_ids
    encoded.labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    if max_length is not None and len(encoded.input_ids) > max_length:
        raise TooLongError(f"{len(encoded.input_ids)} tokens > max_length {max_length}")
    return encoded


def image_id(processor: VLMProcessor) -> int:
    return processor.tokenizer.convert_tokens_to_ids(processor.image_token)


def video_id(processor: VLMProcessor) -> int:
    return processor.tokenizer.convert_tokens_to_ids(processor.video_token)


def mm_token_type_ids(input_ids: torch.Tensor, processor: VLMProcessor) -> torch.Tensor:
    """0 for text, 1 for image, 2 for video tokens (transformers 5 needs it for multimodal forwards)."""
    types = torch.zeros_like(input_ids)
    types[input_ids == image_id(processor)] = 1
    types[input_ids == video_id(processor)] = 2
    return types


def pad_batch(encoded: list[EncodedChat], processor: VLMProcessor, *, left: bool = False) -> dict[str, Any]:
    """Padded tensors with `mm_token_type_ids`; media tensors concatenated in batch order.

    Right padding for training and for reading answer logits at known positions; left padding for
    `generate`, which appends after the last column.
    """
    length = max(len(e.input_ids) for e in encoded)
    input_ids = torch.full((len(encoded), length), processor.tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(encoded), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
    for row, e in enumerate(encoded):
        columns = slice(length - len(e.input_ids), length) if left else slice(0, len(e.input_ids))
        input_ids[row, columns] = torch.tensor(e.input_ids)
        labels[row, columns] = torch.tensor(e.labels)
        attention_mask[row, columns] = 1
    batch: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "mm_token_type_ids": mm_token_type_ids(input_ids, processor),
    }
    if not processor.spec.grid_media:
        del batch["mm_token_type_ids"]  # Qwen's rotary positions need it; LLaVA-OneVision takes none
        batch.update(_llava_media(encoded))
        return batch
    images = [p for e in encoded for p in e.pixel_values]
    if images:
        batch["pixel_values"] = torch.cat(images)
        batch["image_grid_thw"] = torch.tensor([g for e in encoded for g in e.image_grid_thw])
    videos = [p for e in encoded for p in e.pixel_values_videos]
    if videos:
        batch["pixel_values_videos"] = torch.cat(videos)
        batch["video_grid_thw"] = torch.tensor([g for e in encoded for g in e.video_grid_thw])
    return batch


def _llava_media(encoded: list[EncodedChat]) -> dict[str, torch.Tensor]:
    """Images as (images, tiles, 3, H, W), zero tiles padding images with fewer (the model reads each image's
    tile count from `image_sizes`); videos as (videos, frames, 3, H, W)."""
    media: dict[str, torch.Tensor] = {}
    images = [p for e in encoded for p in e.pixel_values]
    if images:
        tiles = max(p.shape[0] for p in images)
        padded = [torch.cat([p, p.new_zeros(tiles - p.shape[0], *p.shape[1:])]) for p in images]
        media["pixel_values"] = torch.stack(padded)
        media["image_sizes"] = torch.tensor([s for e in encoded for s in e.image_sizes])
    videos = [p for e in encoded for p in e.pixel_values_videos]
    if videos:
        if len({v.shape for v in videos}) > 1:
            raise ValueError(
                f"LLaVA-OneVision videos of one batch need the same frame count, got {[len(v) for v in videos]}"
            )
        media["pixel_values_videos"] = torch.stack(videos)
    return media
