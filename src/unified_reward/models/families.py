"""The VLM families the project builds, loads and trains, and each family's facts in one place: its transformers
class, its media placeholder tokens and how a media part reads in the chat text, whether its media are patch grids
with multimodal rotary positions (Qwen) or tiles with image sizes (LLaVA-OneVision), and its decoder layers (the
FSDP wrapping units).

A new family is its entry here, its processor branch (`processor.py`) and its tiny config (`builders.py`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

Family = Literal["qwen2_vl", "qwen2_5_vl", "llava_onevision"]


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_class: str  # a transformers class (image-text-to-text, with generation)
    image_token: str
    video_token: str
    media_in_chat: tuple[str, str]  # an image part and a video part as the chat template writes them
    # Qwen: media are patch grids (`image_grid_thw`) with multimodal rotary positions (`mm_token_type_ids`), so
    # samples can be packed; LLaVA-OneVision: image tiles with `image_sizes`, positions 0..n, no packing
    grid_media: bool
    decoder_layers: tuple[str, ...]  # `module:Class` of the language model's blocks

    def decoder_layer_classes(self) -> tuple[type, ...]:
        classes = []
        for path in self.decoder_layers:
            module, name = path.split(":")
            classes.append(getattr(importlib.import_module(module), name))
        return tuple(classes)


_QWEN_MEDIA = ("<|vision_start|><|image_pad|><|vision_end|>", "<|vision_start|><|video_pad|><|vision_end|>")
FAMILY_TABLE: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily(
            "qwen2_vl",
            "Qwen2VLForConditionalGeneration",
            "<|image_pad|>",
            "<|video_pad|>",
            _QWEN_MEDIA,
            grid_media=True,
            decoder_layers=("transformers.models.qwen2_vl.modeling_qwen2_vl:Qwen2VLDecoderLayer",),
        ),
        ModelFamily(
            "qwen2_5_vl",
            "Qwen2_5_VLForConditionalGeneration",
            "<|image_pad|>",
            "<|video_pad|>",
            _QWEN_MEDIA,
            grid_media=True,
            decoder_layers=("transformers.models.qwen2_5_vl.modeling_qwen2_5_vl:Qwen2_5_VLDecoderLayer",),
        ),
        ModelFamily(
            "llava_onevision",
            "LlavaOnevisionForConditionalGeneration",
            "<image>",
            "<video>",
            ("<image>", "<video>"),
            grid_media=False,
            decoder_layers=("transformers.models.qwen2.modeling_qwen2:Qwen2DecoderLayer",),  # its Qwen2 LM
        ),
    )
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_TABLE)


def family_spec(family: str) -> ModelFamily:
    try:
        return FAMILY_TABLE[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; choose one of {FAMILIES}") from None
