"""The processor of a VLM family: its tokenizer (a checkpoint's, or the offline tiny one), its image processor
(the PIL ones, which need no torchvision) and its media tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unified_reward.models.families import Family, ModelFamily, family_spec
from unified_reward.models.locate import hub_errors_explained, locate_pretrained

if TYPE_CHECKING:
    from unified_reward.models.tokenizer import TinyVocabulary

TINY_LLAVA_IMAGE_SIZE, TINY_LLAVA_PATCH_SIZE = 32, 8


@dataclass
class VLMProcessor:
    """What turns chat parts into model inputs for one family: tokenizer, image processor, media tokens."""

    family: str
    tokenizer: Any
    image_processor: Any
    image_token: str
    video_token: str
    # LLaVA-OneVision only: visual tokens per image tile, (vision image_size / patch_size)^2, and the
    # "anyres_max_N" cap; with the processor's grid pinpoints they fix how many tokens an image takes
    tokens_per_tile: int | None = None
    vision_aspect_ratio: str = "anyres_max_9"

    @property
    def spec(self) -> ModelFamily:
        return family_spec(self.family)

    def save_pretrained(self, path) -> None:
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)


def build_processor(
    family: Family,
    pretrained: str | None = None,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    image_mean: list[float] | None = None,
    image_std: list[float] | None = None,
    tiny_vocab_size: int = 1024,
    tiny_vocabulary: TinyVocabulary | None = None,
) -> VLMProcessor:
    """Tokenizer and image processor. Uses the PIL image processors, which need no torchvision;
    videos are turned into patches from their frames by the collator with the same arithmetic.

    `min_pixels`/`max_pixels` (Qwen) set the resizing range; None keeps a checkpoint's own (an exported judge is
    read at the size it was trained at), and without a checkpoint means 56 x 56 to 28 x 28 x 1280.
    Without a checkpoint the tokenizer is the offline one, trained on the templates and `tiny_vocabulary`.
    `image_mean`/`image_std` replace the processor's pixel normalisation (None keeps the checkpoint's).
    A model trained from scratch needs the mean of its own data: the Qwen vision towers embed patches
    with a bias-free projection, so with CLIP's mean a dark background becomes a large constant
    vector that drowns the objects, and the tiny judge stays at chance.
    """
    family_spec(family)  # an unknown family is refused before anything is loaded
    if not pretrained:
        tiny = (tiny_vocab_size, tiny_vocabulary)
        return _load_processor(family, None, min_pixels, max_pixels, image_mean, image_std, tiny)
    with hub_errors_explained(pretrained):
        return _load_processor(
            family, locate_pretrained(pretrained), min_pixels, max_pixels, image_mean, image_std, None
        )


def _load_processor(family, pretrained, min_pixels, max_pixels, image_mean, image_std, tiny):
    normalisation = {
        key: list(value) for key, value in (("image_mean", image_mean), ("image_std", image_std)) if value is not None
    }
    from transformers import AutoTokenizer

    spec = family_spec(family)
    if spec.grid_media:
        from transformers import Qwen2VLImageProcessorPil

        # a checkpoint keeps the image size it was trained at unless min/max_pixels are given
        sizing = {}
        if min_pixels is not None or max_pixels is not None or not pretrained:
            shortest, longest = min_pixels or 56 * 56, max_pixels or 28 * 28 * 1280
            sizing = {"size": {"shortest_edge": shortest, "longest_edge": longest}}
        image_processor = (
            Qwen2VLImageProcessorPil.from_pretrained(pretrained, **sizing, **normalisation)
            if pretrained
            else Qwen2VLImageProcessorPil(**sizing, **normalisation)
        )
    else:
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        side = TINY_LLAVA_IMAGE_SIZE
        image_processor = (
            LlavaOnevisionImageProcessorPil.from_pretrained(pretrained, **normalisation)
            if pretrained
            else LlavaOnevisionImageProcessorPil(
                size={"height": side, "width": side}, image_grid_pinpoints=[[side, side]], **normalisation
            )
        )
        llava = {"tokens_per_tile": (side // TINY_LLAVA_PATCH_SIZE) ** 2}
        if pretrained:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(pretrained)
            vision = config.vision_config
            llava = {
                "tokens_per_tile": (vision.image_size // vision.patch_size) ** 2,
                "vision_aspect_ratio": getattr(config, "vision_aspect_ratio", "anyres_max_9"),
            }
    if pretrained:
        tokenizer = AutoTokenizer.from_pretrained(pretrained)
    else:
        from unified_reward.models.tokenizer import build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer(tiny[0], family=family, vocabulary=tiny[1])
    tokenizer.padding_side = "right"
    extra = {} if spec.grid_media else llava
    return VLMProcessor(family, tokenizer, image_processor, spec.image_token, spec.video_token, **extra)
