"""Sampling from a text-to-image or text-to-video denoiser: the public API that evaluation and the
filter's candidate generation call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from unified_reward.generation.noise import NoiseObjective
from unified_reward.models.conditioning import CaptionEmbeddings, CaptionEncoder, LatentCodec
from unified_reward.models.diffusion import predict


@torch.no_grad()
def sample(
    denoiser: nn.Module,
    caption_encoder: CaptionEncoder,
    captions: Sequence[str],
    objective: NoiseObjective,
    *,
    shape: Sequence[int],
    seeds: Sequence[int],
    steps: int = 25,
    guidance_scale: float = 1.0,
    batch_size: int = 32,
) -> Tensor:
    """Samples for `captions`, one per caption, each from its own seed (so candidate i of a caption is
    reproducible alone). `shape` is one sample's shape: (C, H, W) for images, (C, F, H, W) for videos.
    With `guidance_scale` > 1, classifier-free guidance against the empty caption. Returns the
    denoiser's space (pixels in [-1, 1] for the tiny default; latents for real checkpoints)."""
    if len(seeds) != len(captions):
        raise ValueError(f"one seed per caption: got {len(seeds)} seeds for {len(captions)} captions")
    was_training = denoiser.training
    denoiser.eval()
    device = next(denoiser.parameters()).device
    dtype = next(denoiser.parameters()).dtype
    outputs = []
    for start in range(0, len(captions), batch_size):
        chunk = list(captions[start : start + batch_size])
        noise = torch.stack(
            [
                torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s)))
                for s in seeds[start : start + batch_size]
            ]
        ).to(device, dtype)
        outputs.append(
            _denoise_loop(denoiser, caption_encoder(chunk), caption_encoder, noise, objective, steps, guidance_scale)
        )
    denoiser.train(was_training)
    return torch.cat(outputs)


def sample_shape(denoiser: nn.Module, size: int, num_frames: int | None) -> tuple[int, ...]:
    """One sample's shape in the denoiser's space: (C, H, W), or (C, F, H, W) for video."""
    channels = denoiser.config.in_channels
    return (channels, num_frames, size, size) if num_frames else (channels, size, size)


@dataclass(frozen=True)
class PixelSampler:
    """How a generator's samples are drawn for evaluation and candidates: everything `sample` needs besides the
    denoiser, the captions and the seeds. Calling it gives pixels in [-1, 1], decoded when the denoiser works
    on latents."""

    caption_encoder: CaptionEncoder
    objective: NoiseObjective
    size: int
    num_frames: int | None = None
    steps: int = 25
    guidance_scale: float = 1.0
    latent_codec: LatentCodec | None = None

    def shape(self, denoiser: nn.Module) -> tuple[int, ...]:
        return sample_shape(denoiser, self.size, self.num_frames)

    def __call__(self, denoiser: nn.Module, captions: Sequence[str], seeds: Sequence[int]) -> Tensor:
        samples = sample(
            denoiser,
            self.caption_encoder,
            captions,
            self.objective,
            shape=self.shape(denoiser),
            seeds=seeds,
            steps=self.steps,
            guidance_scale=self.guidance_scale,
        )
        return samples if self.latent_codec is None else self.latent_codec.decode(samples)


def _denoise_loop(
    denoiser: nn.Module,
    text: CaptionEmbeddings,
    caption_encoder: CaptionEncoder,
    x: Tensor,
    objective: NoiseObjective,
    steps: int,
    guidance_scale: float,
) -> Tensor:
    scheduler = objective.sampler()
    scheduler.set_timesteps(steps, device=x.device)
    guided = guidance_scale != 1.0
    if guided:
        empty = caption_encoder([""] * x.shape[0])
        text = CaptionEmbeddings(torch.cat([empty.hidden, text.hidden]), torch.cat([empty.pooled, text.pooled]))
    for t in scheduler.timesteps:
        model_input = torch.cat([x, x]) if guided else x
        timesteps = t.expand(model_input.shape[0]).to(x.device)
        out = predict(denoiser, model_input, timesteps, text)
        if guided:
            unconditional, conditional = out.chunk(2)
            out = unconditional + guidance_scale * (conditional - unconditional)
        x = scheduler.step(out, t, x).prev_sample
    return x


def to_uint8(samples: Tensor) -> list[np.ndarray]:
    """[-1, 1] pixel samples to uint8 arrays: images (H, W, 3), videos (F, H, W, 3)."""
    pixels = ((samples.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if pixels.ndim == 4:
        return [p.permute(1, 2, 0).numpy() for p in pixels]
    return [p.permute(1, 2, 3, 0).numpy() for p in pixels]
