"""How a training step noises clean samples and what the denoiser must predict.

- `epsilon` / `v_prediction`: DDPM forward process (diffusers' `DDPMScheduler`), integer timesteps
  drawn uniformly; the target is the noise, or the velocity alpha_t * noise - sigma_t * x0.
- `flow` (SD3 family): x_t = (1 - s) * x0 + s * noise with s drawn logit-normal, timestep = 1000 * s,
  target = noise - x0.
`sampler()` gives the matching inference scheduler (DDIM, or flow-matching Euler).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Prediction = Literal["epsilon", "v_prediction", "flow"]


def _broadcast(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


class NoiseObjective:
    def __init__(
        self,
        prediction: Prediction = "epsilon",
        *,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "scaled_linear",
        clip_sample: bool = False,
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
    ):
        if prediction not in ("epsilon", "v_prediction", "flow"):
            raise ValueError(f"prediction must be epsilon, v_prediction or flow, got {prediction!r}")
        self.prediction = prediction
        self.num_train_timesteps = num_train_timesteps
        self.logit_mean, self.logit_std = logit_mean, logit_std
        self.ddpm = None
        if prediction != "flow":
            from diffusers import DDPMScheduler

            self.ddpm = DDPMScheduler(
                num_train_timesteps=num_train_timesteps,
                beta_schedule=beta_schedule,
                prediction_type=prediction,
                clip_sample=clip_sample,
            )

    def draw_timesteps(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        if self.prediction == "flow":
            normal = torch.randn(n, generator=generator) * self.logit_std + self.logit_mean
            return (torch.sigmoid(normal) * self.num_train_timesteps).to(device)
        return torch.randint(0, self.num_train_timesteps, (n,), generator=generator).to(device)

    def noisy(self, clean: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        if self.prediction == "flow":
            s = _broadcast(timesteps / self.num_train_timesteps, clean)
            return (1 - s) * clean + s * noise
        return self.ddpm.add_noise(clean, noise, timesteps)

    def target(self, clean: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        if self.prediction == "flow":
            return noise - clean
        if self.prediction == "v_prediction":
            return self.ddpm.get_velocity(clean, noise, timesteps)
        return noise

    def sampler(self):
        """A fresh inference scheduler (they keep state between `set_timesteps` and `step`)."""
        if self.prediction == "flow":
            from diffusers import FlowMatchEulerDiscreteScheduler

            return FlowMatchEulerDiscreteScheduler(num_train_timesteps=self.num_train_timesteps, shift=1.0)
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.ddpm.config, timestep_spacing="trailing", set_alpha_to_one=False)
