"""What a denoiser is conditioned on and works in: the frozen caption encoder (a CLIP text model, or a tiny random
one over the offline tokenizer) and the latent codec (a VAE; none for the tiny pixel-space default)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from unified_reward.models.builders import DTYPES

if TYPE_CHECKING:
    from unified_reward.models.tokenizer import TinyVocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionEmbeddings:
    hidden: Tensor  # (batch, tokens, dim): what cross-attention reads
    pooled: Tensor  # (batch, dim'): SD3's pooled projection input


class CaptionEncoder(nn.Module):
    """A frozen tokenizer + CLIP text model: captions to `CaptionEmbeddings`, optionally cached.

    The cache keeps the embeddings of up to `cache_size` distinct captions (the synthetic world and
    fixed evaluation captions repeat a lot); the encoder is frozen, so cached values never go stale.
    """

    def __init__(self, tokenizer, text_model: nn.Module, *, max_length: int = 32, cache_size: int = 0):
        super().__init__()
        self.tokenizer = tokenizer
        self.text_model = text_model.requires_grad_(False).eval()
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()

    def train(self, mode: bool = True):
        super().train(mode)
        self.text_model.eval()  # frozen: no dropout, whatever the trainer sets
        return self

    @property
    def hidden_size(self) -> int:
        return self.text_model.config.hidden_size

    @torch.no_grad()
    def _encode(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        device = next(self.text_model.parameters()).device
        tokens = self.tokenizer(
            captions, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        out = self.text_model(input_ids=tokens.input_ids)
        pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
        return out.last_hidden_state, pooled

    def forward(self, captions: list[str]) -> CaptionEmbeddings:
        if not self.cache_size:
            return CaptionEmbeddings(*self._encode(list(captions)))
        missing = sorted({c for c in captions if c not in self._cache})
        if missing:
            hidden, pooled = self._encode(missing)
            for i, caption in enumerate(missing):
                self._cache[caption] = (hidden[i], pooled[i])
        for caption in captions:
            self._cache.move_to_end(caption)
        rows = [self._cache[c] for c in captions]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return CaptionEmbeddings(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]))


def build_caption_encoder(
    pretrained: str | None = None,
    *,
    tiny: dict[str, int] | None = None,
    max_length: int = 32,
    cache_size: int = 4096,
    dtype: str = "float32",
    tiny_vocabulary: TinyVocabulary | None = None,
) -> CaptionEncoder:
    """SD-style CLIP text encoder (`tokenizer`/`text_encoder` subfolders), or a tiny random one over the
    offline tokenizer. A random frozen encoder still gives every word its own vector, which is all a
    tiny denoiser needs to learn its captions."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if pretrained:
        tokenizer = CLIPTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
        text_model = CLIPTextModel.from_pretrained(pretrained, subfolder="text_encoder", dtype=DTYPES[dtype])
        return CaptionEncoder(tokenizer, text_model, max_length=tokenizer.model_max_length, cache_size=cache_size)
    from unified_reward.models.tokenizer import build_tiny_tokenizer

    size = tiny or {}
    tokenizer = build_tiny_tokenizer(1024, family="qwen2_vl", vocabulary=tiny_vocabulary)
    tokenizer.padding_side = "right"
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.get("hidden_size", 64),
        intermediate_size=2 * size.get("hidden_size", 64),
        projection_dim=size.get("projection_dim", 64),
        num_hidden_layers=size.get("num_hidden_layers", 2),
        num_attention_heads=size.get("num_attention_heads", 2),
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.pad_token_id,  # pooled = state at the first padding token (after the caption)
        bos_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(size.get("seed", 0))  # the same frozen encoder in every run, whatever the run's seed
        text_model = CLIPTextModelWithProjection(config).to(DTYPES[dtype])
    return CaptionEncoder(tokenizer, text_model, max_length=max_length, cache_size=cache_size)


class LatentCodec(nn.Module):
    """A frozen VAE between pixels in [-1, 1] and the latents a real denoiser works on; videos are
    coded frame by frame. Latents follow diffusers' convention: (z - shift_factor) * scaling_factor."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        self.scaling = float(vae.config.scaling_factor)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()
        return self

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        video = pixels.ndim == 5
        frames = pixels.permute(0, 2, 1, 3, 4).flatten(0, 1) if video else pixels
        latents = (self.vae.encode(frames.to(self.vae.dtype)).latent_dist.sample() - self.shift) * self.scaling
        if video:
            latents = latents.unflatten(0, (pixels.shape[0], pixels.shape[2])).permute(0, 2, 1, 3, 4)
        return latents.float()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        video = latents.ndim == 5
        frames = latents.permute(0, 2, 1, 3, 4).flatten(0, 1) if video else latents
        pixels = self.vae.decode((frames / self.scaling + self.shift).to(self.vae.dtype)).sample
        if video:
            pixels = pixels.unflatten(0, (latents.shape[0], latents.shape[2])).permute(0, 2, 1, 3, 4)
        return pixels.float()


def build_latent_codec(pretrained: str | None = None, *, tiny: dict[str, Any] | None = None, dtype: str = "float32"):
    """The pipeline's `vae` subfolder, or a tiny random `AutoencoderKL` (tests of the latent path)."""
    from diffusers import AutoencoderKL

    if pretrained:
        return LatentCodec(AutoencoderKL.from_pretrained(pretrained, subfolder="vae", torch_dtype=DTYPES[dtype]))
    size = tiny or {}
    widths = tuple(size.get("block_out_channels", (16, 32)))
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=size.get("latent_channels", 4),
        block_out_channels=widths,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        norm_num_groups=size.get("norm_num_groups", 8),
        layers_per_block=1,
    )
    return LatentCodec(vae)
