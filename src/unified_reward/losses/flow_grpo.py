"""Flow-GRPO (Liu et al. 2025) as pure functions: the flow model's ODE turned into an SDE with the same marginals, so
that each sampling step is a Gaussian with a log-probability, and the clipped GRPO objective over those steps.

With x_s = (1 - s) x0 + s noise (s: the sigma, 1 = noise, 0 = data) and the velocity v = noise - x0, the denoised
estimate is x0 = x - s v and the noise estimate x + (1 - s) v, so the score is -(x + (1 - s) v) / s. One step from
s to s' < s (ds = s' - s < 0) of the reverse SDE with diffusion g_s = eta * sqrt(s / (1 - s)):
    mean = x + [v + g_s^2 / (2 s) * (x + (1 - s) v)] * ds,      std = g_s * sqrt(-ds)
and x' = mean + std * z. eta = 0 is the Euler ODE step. Log-probabilities are means over a sample's elements (the
sum would scale the ratio with the image size). The KL to the reference at a step, both Gaussians sharing the std,
is (mean - mean_ref)^2 / (2 std^2), also averaged over elements.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _per_sample(values: Tensor) -> Tensor:
    return values.flatten(1).mean(-1)


def sde_step_mean_std(
    x: Tensor, velocity: Tensor, sigma: float, sigma_next: float, *, eta: float, sigma_cap: float
) -> tuple[Tensor, float]:
    """The Gaussian of one SDE step from `sigma` to `sigma_next` (the std is a number). `sigma_cap` (< 1) bounds the
    sigma in g_s, which is infinite at s = 1."""
    ds = sigma_next - sigma
    if ds >= 0:
        raise ValueError(f"sigma must decrease along the trajectory, got {sigma} -> {sigma_next}")
    s = min(sigma, sigma_cap)
    g = eta * math.sqrt(s / (1 - s))
    mean = x + (velocity + g**2 / (2 * sigma) * (x + (1 - sigma) * velocity)) * ds
    return mean, g * math.sqrt(-ds)


def gaussian_log_prob(sample: Tensor, mean: Tensor, std: float) -> Tensor:
    """(batch,) log N(sample; mean, std^2), averaged over each sample's elements."""
    return _per_sample(-((sample - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi))


def step_kl(mean: Tensor, reference_mean: Tensor, std: float) -> Tensor:
    """(batch,) KL between two Gaussians of one step sharing `std`, averaged over elements."""
    return _per_sample((mean - reference_mean) ** 2 / (2 * std**2))


def flow_grpo_step_loss(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    kl: Tensor | None = None,
    *,
    beta: float = 0.0,
    epsilon: float = 1e-4,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped objective of one sampling step of each sample ((batch,) inputs), mean over the batch; and its
    metrics. Flow-GRPO clips the ratio tightly (epsilon ~1e-4): each step's ratio moves little."""
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon)
    losses = -torch.min(ratio * advantages, clipped * advantages)
    if kl is not None:
        losses = losses + beta * kl
    metrics = {
        "clip_ratio": ((ratio * advantages) != (clipped * advantages)).float().mean().detach(),
        "ratio": ratio.mean().detach(),
    }
    if kl is not None:
        metrics["kl"] = kl.mean().detach()
    return losses.mean(), metrics
