"""Records -> model inputs for the judge (and, later, for VLM policies).

`encode_chat` turns chat content parts (text, images, videos) plus an optional answer into token
ids, labels (-100 everywhere but the answer tokens), `mm_token_type_ids` (0 text, 1 image,
2 video) and the media tensors, expanding each media placeholder to the number of tokens its
media takes. Videos become Qwen2-VL patches from their frames with the image processor's own
arithmetic (no torchvision needed). A sample longer than `max_length` is never cut (a cut would
go through media tokens): it is skipped and counted, or raises in strict mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from unified_reward.data.schema import PreferenceRecord, VideoClip
from unified_reward.models.builders import VLMProcessor
from unified_reward.prompts.templates import DEFAULT_SCALE, JudgeTemplate, render_judge_prompt, score_answer

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


def _image_patches(processor: VLMProcessor, image: Image.Image) -> tuple[torch.Tensor, list[int]]:
    out = processor.image_processor(images=[image], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"][0].tolist()


def _video_patches(processor: VLMProcessor, clip: VideoClip) -> tuple[torch.Tensor, list[int]]:
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


def encode_chat(
    processor: VLMProcessor,
    parts: list[dict[str, Any]],
    answer: str | None,
    *,
    max_length: int | None = None,
) -> EncodedChat:
    """Token ids for one user turn and (optionally) the assistant answer, labelled for SFT."""
    if processor.family == "llava_onevision":
        raise NotImplementedError("the LLaVA-OneVision collator is not written yet; use qwen2_vl or qwen2_5_vl")
    tokenizer = processor.tokenizer
    chat_parts = [{"type": p["type"], "text": p.get("text", "")} for p in parts]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": chat_parts}], tokenize=False, add_generation_prompt=True
    )
    encoded = EncodedChat([], [])
    merge = processor.image_processor.merge_size**2
    token_counts: dict[int, list[int]] = {image_id(processor): [], video_id(processor): []}
    for part in parts:
        if part["type"] == "image":
            patches, grid = _image_patches(processor, part["media"])
            encoded.pixel_values.append(patches)
            encoded.image_grid_thw.append(grid)
            token_counts[image_id(processor)].append(int(np.prod(grid)) // merge)
        elif part["type"] == "video":
            patches, grid = _video_patches(processor, part["media"])
            encoded.pixel_values_videos.append(patches)
            encoded.video_grid_thw.append(grid)
            token_counts[video_id(processor)].append(int(np.prod(grid)) // merge)
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


class JudgeCollator:
    """Batches judge records: the task's template, the media, and the judge's answer as the SFT target."""

    def __init__(
        self,
        processor: VLMProcessor,
        templates: dict[str, JudgeTemplate],
        *,
        max_length: int = 4096,
        strict: bool = False,
        train_rationale: bool = False,
    ):
        self.processor = processor
        self.templates = templates
        self.max_length = max_length
        self.strict = strict
        self.train_rationale = train_rationale
        self.skipped_too_long = 0

    def parts(self, record: PreferenceRecord) -> list[dict[str, Any]]:
        return render_judge_prompt(
            self.templates,
            record.task,
            record.mode,
            record.prompt,
            record.context,
            record.candidates,
            record.scale or DEFAULT_SCALE,
        )

    def answer(self, record: PreferenceRecord) -> str:
        verdict = (
            self.templates[record.stream].pair_answers[record.label]
            if record.mode == "pair"
            else score_answer(record.label.score)
        )
        if self.train_rationale and record.rationale:
            return f"{record.rationale.strip()}\n{verdict}"
        return verdict

    def __call__(self, records: list[PreferenceRecord]) -> dict[str, Any] | None:
        encoded, kept = [], []
        for record in records:
            try:
                encoded.append(
                    encode_chat(self.processor, self.parts(record), self.answer(record), max_length=self.max_length)
                )
                kept.append(record)
            except TooLongError as error:
                if self.strict:
                    raise TooLongError(f"record {record.id}: {error}") from error
                self.skipped_too_long += 1
        if not encoded:
            return None
        batch = pad_batch(encoded, self.processor)
        batch["records"] = kept
        return batch


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
    images = [p for e in encoded for p in e.pixel_values]
    if images:
        batch["pixel_values"] = torch.cat(images)
        batch["image_grid_thw"] = torch.tensor([g for e in encoded for g in e.image_grid_thw])
    videos = [p for e in encoded for p in e.pixel_values_videos]
    if videos:
        batch["pixel_values_videos"] = torch.cat(videos)
        batch["video_grid_thw"] = torch.tensor([g for e in encoded for g in e.video_grid_thw])
    return batch
