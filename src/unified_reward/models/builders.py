"""Backbone builders: plain functions returning an `nn.Module` (and its processor), no Lightning.

Families: Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision. `pretrained=<hub id or local path>` loads real
weights with `from_pretrained`; `pretrained=None` builds a tiny model of the same architecture
class from config, with the offline tokenizer, for the embedded default and the tests.
Options: dtype, attention implementation, gradient checkpointing, LoRA (peft) and QLoRA (4-bit NF4
through transformers' `BitsAndBytesConfig` + `prepare_model_for_kbit_training`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from unified_reward.models.locate import hub_errors_explained, locate_pretrained

if TYPE_CHECKING:
    from unified_reward.models.tokenizer import TinyVocabulary

log = logging.getLogger(__name__)

Family = Literal["qwen2_vl", "qwen2_5_vl", "llava_onevision"]
FAMILIES: tuple[str, ...] = ("qwen2_vl", "qwen2_5_vl", "llava_onevision")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# attention and MLP projections of the language model (the vision tower is left frozen-free by default)
TINY_LLAVA_IMAGE_SIZE, TINY_LLAVA_PATCH_SIZE = 32, 8
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


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

    def save_pretrained(self, path) -> None:
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {FAMILIES}")


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
    _check_family(family)
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

    if family in ("qwen2_vl", "qwen2_5_vl"):
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
        image_token, video_token = "<|image_pad|>", "<|video_pad|>"
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
        image_token, video_token = "<image>", "<video>"
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
    if family == "llava_onevision":
        return VLMProcessor(family, tokenizer, image_processor, image_token, video_token, **llava)
    return VLMProcessor(family, tokenizer, image_processor, image_token, video_token)


def _special_token_ids(tokenizer) -> dict[str, int | None]:
    """bos/eos ids of the offline tokenizer (the Qwen configs' defaults are the 151k-vocabulary ids)."""
    return {
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.eos_token_id,
    }


def _tiny_qwen_config(family: str, processor: VLMProcessor, size: dict[str, int]):
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    tokenizer = processor.tokenizer
    hidden, heads = size.get("hidden_size", 96), size.get("num_attention_heads", 4)
    head_dim = hidden // heads
    if head_dim % 4:
        raise ValueError(f"tiny Qwen needs hidden_size/heads divisible by 4, got {hidden}/{heads}")
    quarter = head_dim // 4  # mrope_section (t, h, w) must sum to head_dim / 2
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": size.get("intermediate_size", 4 * hidden),
        "num_hidden_layers": size.get("num_hidden_layers", 2),
        "num_attention_heads": heads,
        "num_key_value_heads": size.get("num_key_value_heads", 2),
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter],
        },
        "tie_word_embeddings": True,
        **_special_token_ids(tokenizer),
    }
    vision_embed = size.get("vision_embed_dim", 64)
    ids = {
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }
    if family == "qwen2_vl":
        vision = {
            "depth": size.get("vision_depth", 2),
            "embed_dim": vision_embed,
            "hidden_size": hidden,
            "num_heads": size.get("vision_heads", 4),
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        }
        return Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
    vision = {
        "depth": size.get("vision_depth", 2),
        "hidden_size": vision_embed,
        "out_hidden_size": hidden,
        "intermediate_size": 2 * vision_embed,
        "num_heads": size.get("vision_heads", 4),
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [size.get("vision_depth", 2) - 1],
    }
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)


def _tiny_llava_config(processor: VLMProcessor, size: dict[str, int]):
    from transformers import LlavaOnevisionConfig

    tokenizer = processor.tokenizer
    hidden = size.get("hidden_size", 96)
    text = {
        "model_type": "qwen2",
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": size.get("intermediate_size", 4 * hidden),
        "num_hidden_layers": size.get("num_hidden_layers", 2),
        "num_attention_heads": size.get("num_attention_heads", 4),
        "num_key_value_heads": size.get("num_key_value_heads", 2),
        "tie_word_embeddings": True,
        **_special_token_ids(tokenizer),
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": size.get("vision_embed_dim", 64),
        "intermediate_size": 2 * size.get("vision_embed_dim", 64),
        "num_hidden_layers": size.get("vision_depth", 2),
        "num_attention_heads": size.get("vision_heads", 4),
        "image_size": TINY_LLAVA_IMAGE_SIZE,
        "patch_size": TINY_LLAVA_PATCH_SIZE,
    }
    return LlavaOnevisionConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
        image_grid_pinpoints=[[TINY_LLAVA_IMAGE_SIZE, TINY_LLAVA_IMAGE_SIZE]],
    )


def _model_class(family: str):
    from transformers import (
        LlavaOnevisionForConditionalGeneration,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLForConditionalGeneration,
    )

    return {
        "qwen2_vl": Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
        "llava_onevision": LlavaOnevisionForConditionalGeneration,
    }[family]


def _quantization_config(dtype: torch.dtype, quant_storage: str | None):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
        # a float storage type lets FSDP shard the 4-bit weights like any other parameter
        bnb_4bit_quant_storage=DTYPES[quant_storage] if quant_storage else torch.uint8,
        llm_int8_skip_modules=["visual", "vision_tower", "multi_modal_projector", "lm_head", "merger"],
    )


def _disable_avx512_bf16_repacking(model: nn.Module) -> int:
    """bitsandbytes on CPUs with avx512_bf16 repacks 4-bit weights in a no-grad forward, after which every
    training step fails with an in-place error on a leaf view; turning the repacking off avoids it."""
    count = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def build_vlm(
    family: Family,
    processor: VLMProcessor,
    *,
    pretrained: str | None = None,
    tiny: dict[str, int] | None = None,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    gradient_checkpointing: bool = False,
    finetune: Literal["full", "lora", "qlora"] = "full",
    lora_rank: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    lora_targets: str | list[str] = DEFAULT_LORA_TARGETS,
    quant_storage: str | None = None,
    freeze_vision: bool = False,
) -> nn.Module:
    """The VLM, ready to train as configured (full, LoRA, or QLoRA)."""
    _check_family(family)
    if finetune not in ("full", "lora", "qlora"):
        raise ValueError(f"finetune must be full, lora or qlora, got {finetune!r}")
    torch_dtype = DTYPES[dtype]
    model_class = _model_class(family)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn_implementation}
    if finetune == "qlora":
        kwargs["quantization_config"] = _quantization_config(torch_dtype, quant_storage)
    if pretrained:
        with hub_errors_explained(pretrained):
            model = model_class.from_pretrained(locate_pretrained(pretrained), **kwargs)
    else:
        config = (
            _tiny_llava_config(processor, tiny or {})
            if family == "llava_onevision"
            else _tiny_qwen_config(family, processor, tiny or {})
        )
        config._attn_implementation = attn_implementation
        if finetune == "qlora":
            model = _quantized_from_config(model_class, config, kwargs)
        else:
            model = model_class._from_config(config, dtype=torch_dtype)
    if freeze_vision:
        for name, parameter in model.named_parameters():
            if "visual" in name or "vision_tower" in name:
                parameter.requires_grad_(False)
    if finetune == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        _disable_avx512_bf16_repacking(model)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if finetune in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=lora_targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    model.config.use_cache = False
    return model.train()  # from_pretrained returns eval mode; a builder's model is ready to train


def _quantized_from_config(model_class, config, kwargs: dict[str, Any]) -> nn.Module:
    """A tiny random model quantized to 4 bit as `from_pretrained` would: save it, load it quantized."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model_class._from_config(config).save_pretrained(folder)
        return model_class.from_pretrained(folder, **kwargs)
