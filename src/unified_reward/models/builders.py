"""VLM builders: plain functions returning an `nn.Module` (its processor: `models.processor`), no Lightning.

Families: Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision. `pretrained=<hub id or local path>` loads real
weights with `from_pretrained`; `pretrained=None` builds a tiny model of the same architecture
class from config, with the offline tokenizer, for the embedded default and the tests.
Options: dtype, attention implementation, gradient checkpointing, LoRA (peft) and QLoRA (4-bit NF4
through transformers' `BitsAndBytesConfig` + `prepare_model_for_kbit_training`).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from torch import nn

from unified_reward.models.architectures import VLMArchitecture, vlm_architecture
from unified_reward.models.families import Family, family_spec
from unified_reward.models.locate import hub_errors_explained, locate_pretrained
from unified_reward.models.processor import TINY_LLAVA_IMAGE_SIZE, TINY_LLAVA_PATCH_SIZE, VLMProcessor

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# attention and MLP projections of the language model (the vision tower is left frozen-free by default)
# modules QLoRA keeps in their float dtype (bitsandbytes quantizes the other linear layers to 4 bit)
QUANTIZATION_SKIPPED_MODULES = ("visual", "vision_tower", "multi_modal_projector", "lm_head", "merger")
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


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
    import transformers

    return getattr(transformers, family_spec(family).model_class)


def _quantization_config(dtype: torch.dtype, quant_storage: str | None):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
        # a float storage type lets FSDP shard the 4-bit weights like any other parameter
        bnb_4bit_quant_storage=DTYPES[quant_storage] if quant_storage else torch.uint8,
        llm_int8_skip_modules=list(QUANTIZATION_SKIPPED_MODULES),
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
    family_spec(family)  # an unknown family is refused before anything is built
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
            if not family_spec(family).grid_media
            else _tiny_qwen_config(family, processor, tiny or {})
        )
        config._attn_implementation = attn_implementation
        if finetune == "qlora":
            model = _quantized_from_config(model_class, config, kwargs)
        else:
            model = model_class._from_config(config, dtype=torch_dtype)
    return prepare_for_training(
        model,
        finetune=finetune,
        gradient_checkpointing=gradient_checkpointing,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_targets=lora_targets,
        freeze_vision=freeze_vision,
    )


def build_vlm_from_architecture(
    architecture: str | VLMArchitecture,
    *,
    decoder_layers: int | None = None,
    vision_depth: int | None = None,
    vocab_size: int | None = None,
    dtype: str = "bfloat16",
    attn_implementation: str = "sdpa",
    finetune: Literal["full", "lora", "qlora"] = "full",
    quant_storage: str | None = None,
    **training: Any,
) -> nn.Module:
    """A released architecture (`models.architectures`) with random weights, at its own or another depth: real
    widths without a download (memory measurements, the FSDP test at real width, scripts/gpu_check.sh).
    `training`: `prepare_for_training`'s options."""
    spec = architecture if isinstance(architecture, VLMArchitecture) else vlm_architecture(architecture)
    config = spec.config(decoder_layers=decoder_layers, vision_depth=vision_depth, vocab_size=vocab_size)
    config._attn_implementation = attn_implementation
    model_class = _model_class(spec.family)
    torch_dtype = DTYPES[dtype]
    if finetune == "qlora":
        kwargs = {"dtype": torch_dtype, "attn_implementation": attn_implementation}
        kwargs["quantization_config"] = _quantization_config(torch_dtype, quant_storage)
        model = _quantized_from_config(model_class, config, kwargs, build_dtype=torch_dtype)  # 7B: 15 GB saved
    else:
        model = model_class._from_config(config, dtype=torch_dtype)
    return prepare_for_training(model, finetune=finetune, **training)


def prepare_for_training(
    model: nn.Module,
    *,
    finetune: Literal["full", "lora", "qlora"] = "full",
    gradient_checkpointing: bool = False,
    lora_rank: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    lora_targets: str | list[str] = DEFAULT_LORA_TARGETS,
    freeze_vision: bool = False,
) -> nn.Module:
    """Frozen vision (optionally), gradient checkpointing, k-bit preparation (qlora) and the LoRA adapter."""
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


def _quantized_from_config(
    model_class, config, kwargs: dict[str, Any], build_dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A random model quantized to 4 bit as `from_pretrained` would: save it, load it quantized."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model_class._from_config(config, dtype=build_dtype).save_pretrained(folder)
        return model_class.from_pretrained(folder, **kwargs)
