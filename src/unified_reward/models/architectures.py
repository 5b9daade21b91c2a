"""The released architectures, written out: each model's config as its hub folder's config.json gives it.

Used where a real-size model is built from config with random weights (no download): the memory measurements
and planner (`unified_reward.sizing`), the FSDP equality test at real width, and `scripts/gpu_check.sh`.
`decoder_layers` / `vision_depth` / `vocab_size` build the same widths at another depth or vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unified_reward.models.families import Family

QWEN_SPECIAL_IDS = {
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "image_token_id": 151655,
    "video_token_id": 151656,
}


@dataclass(frozen=True)
class VLMArchitecture:
    name: str
    family: Family
    hub_id: str
    text: dict[str, Any]
    vision: dict[str, Any]
    special_ids: dict[str, int] = field(default_factory=lambda: dict(QWEN_SPECIAL_IDS))

    @property
    def decoder_layers(self) -> int:
        return self.text["num_hidden_layers"]

    def config(self, *, decoder_layers: int | None = None, vision_depth: int | None = None, vocab_size=None):
        """The transformers config, optionally at another depth (decoder layers, vision blocks) or vocabulary."""
        from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

        half = self.text["hidden_size"] // self.text["num_attention_heads"] // 2
        # the released models' [16, 24, 24] (head_dim 128): time, height, width shares of the rotary half
        rope = {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [half // 4, 3 * half // 8, 3 * half // 8],
        }
        text = dict(self.text, rope_parameters=rope)
        vision = dict(self.vision)
        if decoder_layers is not None:
            text["num_hidden_layers"] = decoder_layers
        if vocab_size is not None:
            text["vocab_size"] = vocab_size
        if vision_depth is not None:
            vision["depth"] = vision_depth
            if "fullatt_block_indexes" in vision:  # keep the windowed / full-attention mix at any depth
                every = 8
                vision["fullatt_block_indexes"] = [i for i in range(vision_depth) if i % every == every - 1] or [
                    vision_depth - 1
                ]
        ids = {k: v for k, v in self.special_ids.items() if k not in ("bos_token_id", "eos_token_id")}
        text |= {k: v for k, v in self.special_ids.items() if k in ("bos_token_id", "eos_token_id")}
        config_class = Qwen2VLConfig if self.family == "qwen2_vl" else Qwen2_5_VLConfig
        return config_class(text_config=text, vision_config=vision, **ids)


def _qwen2_vl_vision(out_hidden: int) -> dict[str, Any]:
    return {
        "depth": 32,
        "embed_dim": 1280,
        "hidden_size": out_hidden,
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_chans": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }


def _qwen2_5_vl_vision(out_hidden: int) -> dict[str, Any]:
    return {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": out_hidden,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
    }


def _text(hidden, intermediate, layers, heads, kv_heads, vocab, tied) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
    }


VLM_ARCHITECTURES: dict[str, VLMArchitecture] = {
    a.name: a
    for a in (
        VLMArchitecture(
            "qwen2_vl_2b",
            "qwen2_vl",
            "Qwen/Qwen2-VL-2B-Instruct",
            _text(1536, 8960, 28, 12, 2, 151936, True),
            _qwen2_vl_vision(1536),
        ),
        VLMArchitecture(
            "qwen2_vl_7b",
            "qwen2_vl",
            "Qwen/Qwen2-VL-7B-Instruct",
            _text(3584, 18944, 28, 28, 4, 152064, False),
            _qwen2_vl_vision(3584),
        ),
        VLMArchitecture(
            "qwen2_5_vl_3b",
            "qwen2_5_vl",
            "Qwen/Qwen2.5-VL-3B-Instruct",
            _text(2048, 11008, 36, 16, 2, 151936, True),
            _qwen2_5_vl_vision(2048),
        ),
        VLMArchitecture(
            "qwen2_5_vl_7b",
            "qwen2_5_vl",
            "Qwen/Qwen2.5-VL-7B-Instruct",
            _text(3584, 18944, 28, 28, 4, 152064, False),
            _qwen2_5_vl_vision(3584),
        ),
    )
}

# Stable Diffusion 1.5's UNet (runwayml/stable-diffusion-v1-5, unet/config.json): 859.5 M parameters
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_TEXT_TOKENS = 77  # CLIP ViT-L/14's context, the UNet's cross-attention length


def vlm_architecture(name_or_hub_id: str) -> VLMArchitecture:
    """An architecture by our name (`qwen2_5_vl_7b`) or by the hub id it was released under."""
    for architecture in VLM_ARCHITECTURES.values():
        if name_or_hub_id in (architecture.name, architecture.hub_id):
            return architecture
    known = ", ".join(f"{a.name} ({a.hub_id})" for a in VLM_ARCHITECTURES.values())
    raise ValueError(f"no written-out architecture for {name_or_hub_id!r}; known: {known}")
