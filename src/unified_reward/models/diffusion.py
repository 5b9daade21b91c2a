"""Diffusion backbones for Diffusion-DPO: denoisers from diffusers (their caption encoder and VAE:
`models.conditioning`).

Builders return plain `nn.Module`s. Kinds of denoiser:
- `unet2d`: text-to-image `UNet2DConditionModel` (SD1.5 family; epsilon or v-prediction);
- `sd3`: flow-matching `SD3Transformer2DModel`;
- `unet3d`: text-to-video `UNet3DConditionModel`;
- `animatediff`: `UNetMotionModel` (an SD1.5 UNet plus a motion adapter).
`pretrained=<hub id or local path>` loads real weights (the `unet`/`transformer` subfolder of a
pipeline folder); `pretrained=None` builds a tiny model of the same class from config. The tiny
default denoises pixels (3 channels); real checkpoints denoise VAE latents.

`predict` hides how each kind is called: `UNetMotionModel` wants the caption states repeated per
frame, `UNet3DConditionModel` repeats them itself, SD3 also takes the pooled caption embedding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from unified_reward.models.builders import DTYPES
from unified_reward.models.conditioning import CaptionEmbeddings

log = logging.getLogger(__name__)

DenoiserKind = Literal["unet2d", "sd3", "unet3d", "animatediff"]
DENOISER_KINDS: tuple[str, ...] = ("unet2d", "sd3", "unet3d", "animatediff")
VIDEO_KINDS: tuple[str, ...] = ("unet3d", "animatediff")
DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _tiny_denoiser(kind: str, size: dict[str, Any], sample_size: int, channels: int, text_dim: int, pooled_dim: int):
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

    widths = tuple(size.get("block_out_channels", (32, 64)))
    common = {
        "sample_size": sample_size,
        "in_channels": channels,
        "out_channels": channels,
        "block_out_channels": widths,
        "layers_per_block": size.get("layers_per_block", 1),
        "cross_attention_dim": text_dim,
        "norm_num_groups": size.get("norm_num_groups", 8),
    }
    # attention only below full resolution: self-attention over every pixel costs more than the rest
    down2d = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(widths) - 1)
    up2d = ("CrossAttnUpBlock2D",) * (len(widths) - 1) + ("UpBlock2D",)
    if kind == "unet2d":
        return UNet2DConditionModel(
            **common,
            down_block_types=down2d,
            up_block_types=up2d,
            attention_head_dim=size.get("attention_head_dim", 2),  # diffusers' legacy name: the number of heads
        )
    if kind == "unet3d":
        return UNet3DConditionModel(
            **common,
            down_block_types=tuple(b.replace("2D", "3D") for b in down2d),
            up_block_types=tuple(b.replace("2D", "3D") for b in up2d),
            attention_head_dim=size.get("attention_head_dim", 2),  # legacy name again: heads per block
        )
    if kind == "animatediff":
        return UNetMotionModel(
            **common,
            down_block_types=tuple(b.replace("2D", "Motion") for b in down2d),
            up_block_types=tuple(b.replace("2D", "Motion") for b in up2d),
            num_attention_heads=size.get("num_attention_heads", 2),
            motion_num_attention_heads=size.get("motion_num_attention_heads", 2),
            motion_max_seq_length=size.get("motion_max_seq_length", 32),
        )
    heads, head_dim = size.get("num_attention_heads", 4), size.get("attention_head_dim", 16)
    patch = size.get("patch_size", 2)
    return SD3Transformer2DModel(
        sample_size=sample_size,
        patch_size=patch,
        in_channels=channels,
        out_channels=channels,
        num_layers=size.get("num_layers", 2),
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=text_dim,
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=pooled_dim,
        pos_embed_max_size=sample_size // patch,
    )


def _load_pretrained(kind: str, pretrained: str, motion_adapter: str | None, dtype: torch.dtype, quantize: bool):
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel, UNet3DConditionModel

    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    if quantize:
        from diffusers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
    if kind == "unet2d":
        return UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet", **kwargs)
    if kind == "unet3d":
        return UNet3DConditionModel.from_pretrained(pretrained, subfolder="unet", **kwargs)
    if kind == "sd3":
        return SD3Transformer2DModel.from_pretrained(pretrained, subfolder="transformer", **kwargs)
    from diffusers import MotionAdapter, UNetMotionModel

    if quantize:
        raise ValueError(
            "QLoRA is not available for animatediff (diffusers cannot quantize UNetMotionModel.from_unet2d)"
        )
    if not motion_adapter:  # a UNetMotionModel saved whole (as our export writes it)
        return UNetMotionModel.from_pretrained(pretrained, subfolder="unet", **kwargs)
    unet = UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet", **kwargs)
    return UNetMotionModel.from_unet2d(unet, MotionAdapter.from_pretrained(motion_adapter, torch_dtype=dtype))


def build_denoiser(
    kind: DenoiserKind,
    *,
    pretrained: str | None = None,
    motion_adapter: str | None = None,
    tiny: dict[str, Any] | None = None,
    sample_size: int = 32,
    channels: int = 3,
    text_dim: int = 64,
    pooled_dim: int = 64,
    dtype: str = "float32",
    finetune: Literal["full", "lora", "qlora"] = "full",
    lora_rank: int = 8,
    lora_alpha: int | None = None,
    lora_targets: tuple[str, ...] | list[str] = DEFAULT_LORA_TARGETS,
    gradient_checkpointing: bool = False,
) -> nn.Module:
    """The denoiser, ready to train: all weights (full), or a LoRA adapter on the attention projections
    over a frozen base (lora) or over a 4-bit NF4 base (qlora, diffusers' `BitsAndBytesConfig`)."""
    if kind not in DENOISER_KINDS:
        raise ValueError(f"unknown denoiser kind {kind!r}; choose one of {DENOISER_KINDS}")
    if finetune not in ("full", "lora", "qlora"):
        raise ValueError(f"finetune must be full, lora or qlora, got {finetune!r}")
    quantize = finetune == "qlora"
    if quantize and not torch.cuda.is_available():
        raise RuntimeError(
            "finetune=qlora for a diffusers denoiser needs a GPU (diffusers' bitsandbytes quantizer refuses "
            "to run without one); use finetune=lora on CPU"
        )
    torch_dtype = DTYPES[dtype]
    if pretrained and pretrained.startswith((".", "/", "~")) and not Path(pretrained).expanduser().exists():
        raise FileNotFoundError(
            f"no denoiser checkpoint at {pretrained}; train one first (the tiny default: "
            "`python src/train.py experiment=diffusion_pretrain_image` exports to models/diffusion_pretrain_image)"
        )
    if pretrained:
        model = _load_pretrained(kind, pretrained, motion_adapter, torch_dtype, quantize)
    else:
        model = _tiny_denoiser(kind, tiny or {}, sample_size, channels, text_dim, pooled_dim)
        if quantize:  # quantized exactly as a checkpoint would be: save it, load it back in 4 bit
            import tempfile

            subfolder = "transformer" if kind == "sd3" else "unet"
            with tempfile.TemporaryDirectory() as folder:
                model.save_pretrained(f"{folder}/{subfolder}")
                model = _load_pretrained(kind, folder, None, torch_dtype, quantize)
        elif torch_dtype != torch.float32:
            model = model.to(torch_dtype)
    if gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if finetune in ("lora", "qlora"):
        from peft import LoraConfig, inject_adapter_in_model

        model.requires_grad_(False)
        # peft's injection works on every kind (UNet3DConditionModel has no diffusers adapter mixin)
        lora = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha or lora_rank,
            init_lora_weights="gaussian",
            target_modules=list(lora_targets),
        )
        model = inject_adapter_in_model(lora, model)
        # LoRA weights stay float32 when the frozen base is half precision, so optimizer updates are not lost
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    return model


def denoiser_kind(model: nn.Module) -> DenoiserKind:
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

    for cls, kind in (
        (UNetMotionModel, "animatediff"),
        (UNet3DConditionModel, "unet3d"),
        (SD3Transformer2DModel, "sd3"),
        (UNet2DConditionModel, "unet2d"),
    ):
        if isinstance(model, cls):
            return kind
    raise TypeError(f"{type(model).__name__} is not a supported denoiser ({DENOISER_KINDS})")


def predict(model: nn.Module, noisy: Tensor, timesteps: Tensor, text: CaptionEmbeddings) -> Tensor:
    """The denoiser's output for noisy samples: images (B, C, H, W) or videos (B, C, F, H, W)."""
    kind = denoiser_kind(model)
    hidden = text.hidden.to(noisy.dtype)
    if kind == "sd3":
        return model(
            hidden_states=noisy, timestep=timesteps, encoder_hidden_states=hidden, pooled_projections=text.pooled
        ).sample
    if kind == "animatediff":
        hidden = hidden.repeat_interleave(noisy.shape[2], dim=0)
    return model(noisy, timesteps, encoder_hidden_states=hidden).sample
