"""Diffusion-DPO (Wallace et al., 2023) as pure functions.

The chosen (w) and rejected (l) samples of a pair are noised with the same noise at the same
timestep; each sample's error is the mean over ALL its non-batch dimensions of the squared
difference between prediction and target (for video: channels, frames, height and width), and

    loss = -log sigmoid(-0.5 * beta * ((err_w - ref_err_w) - (err_l - ref_err_l)))

Our `beta` is the coefficient of the paper and its reference code (5000 for SD1.5). diffusers'
`train_diffusion_dpo.py` writes `-log sigmoid(beta' * (ref_diff - model_diff))` with beta' = 2500:
the same loss, so beta here is twice diffusers' number (5000 here == 2500 there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def per_sample_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every non-batch dimension, in float32: shape (batch,)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    return (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)


@dataclass(frozen=True)
class DiffusionDPOOutput:
    loss: Tensor  # scalar, mean over pairs
    inside: Tensor  # (pairs,) the argument of log sigmoid; > 0 means the model prefers the chosen sample
    implicit_accuracy: Tensor  # scalar; a pair with inside == 0 counts as half right


def diffusion_dpo_loss(
    model_error_chosen: Tensor,
    model_error_rejected: Tensor,
    reference_error_chosen: Tensor,
    reference_error_rejected: Tensor,
    beta: float,
) -> DiffusionDPOOutput:
    """The loss from per-sample errors (each shape (pairs,)) of the trained and the reference model."""
    model_diff = model_error_chosen - model_error_rejected
    reference_diff = reference_error_chosen - reference_error_rejected
    inside = -0.5 * beta * (model_diff - reference_diff)
    loss = -F.logsigmoid(inside).mean()
    implicit_accuracy = (inside > 0).float().mean() + 0.5 * (inside == 0).float().mean()
    return DiffusionDPOOutput(loss=loss, inside=inside, implicit_accuracy=implicit_accuracy)


def denoise_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """The plain diffusion loss: the mean per-sample error of the model's prediction (how a generator is first
    trained, on the chosen samples only)."""
    return per_sample_error(prediction, target).mean()


def split_pair_errors(errors: Tensor) -> tuple[Tensor, Tensor]:
    """Errors of a batch laid out [chosen..., rejected...] back into (chosen, rejected)."""
    if errors.shape[0] % 2:
        raise ValueError(f"a pair batch has an even size, got {errors.shape[0]}")
    return errors.chunk(2)


def shared_noise_and_timesteps(noise: Tensor, timesteps: Tensor) -> tuple[Tensor, Tensor]:
    """One draw per pair, repeated for its chosen and rejected halves."""
    return torch.cat([noise, noise]), torch.cat([timesteps, timesteps])
