"""GRPO (Shao et al. 2024, DeepSeekMath) as pure functions: group-normalised advantages and the clipped objective
with a KL term to the reference, on per-token log-probabilities.

For the G answers o_i sampled for one prompt with rewards r_i:
    A_i = (r_i - mean(r)) / (std(r) + eps)          (`scale=False`: r_i - mean(r), Dr. GRPO)
and, per answer token t, with ratio_it = pi(o_it) / pi_old(o_it):
    l_it = -min(ratio_it A_i, clip(ratio_it, 1 - epsilon, 1 + epsilon_high) A_i) + beta * kl_it
    kl_it = exp(ref_it - logp_it) - (ref_it - logp_it) - 1       (the k3 estimator, >= 0)
`loss_type="grpo"` averages l over each answer's tokens, then over answers (the paper); `"dapo"` over all answer
tokens of the batch at once (DAPO's token-level mean, TRL's default), so long answers are not down-weighted.
std is the sample std (n - 1), as TRL's. A group whose rewards are all equal has zero advantage, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSS_TYPES = ("grpo", "dapo")


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position: logits (..., n, vocab) predict targets (..., n); float32."""
    flat = -F.cross_entropy(logits.float().flatten(0, -2), targets.flatten().clamp(min=0), reduction="none")
    return flat.view(targets.shape)


def group_advantages(
    rewards: torch.Tensor, valid: torch.Tensor | None = None, *, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """(groups, G) advantages of (groups, G) rewards. `valid` (groups, G) bool: the samples that count; the others
    (a dropped judgment) take no part in their group's mean and std and get advantage 0. A group with fewer than two
    valid samples, or with equal rewards, gets 0 everywhere."""
    valid = torch.isfinite(rewards) if valid is None else valid & torch.isfinite(rewards)
    weights = valid.to(rewards.dtype)
    counts = weights.sum(-1, keepdim=True)
    values = torch.where(valid, rewards, torch.zeros_like(rewards))
    mean = values.sum(-1, keepdim=True) / counts.clamp(min=1)
    centred = torch.where(valid, rewards - mean, torch.zeros_like(rewards))
    advantages = centred
    if scale:
        std = (centred.pow(2).sum(-1, keepdim=True) / (counts - 1).clamp(min=1)).sqrt()
        advantages = centred / (std + eps)
    return torch.where(valid & (counts > 1), advantages, torch.zeros_like(advantages))


@dataclass
class GRPOLossOutput:
    loss: torch.Tensor
    kl: torch.Tensor  # mean k3 KL per answer token, detached
    clipped: torch.Tensor  # share of answer tokens whose ratio was clipped
    ratio: torch.Tensor  # mean ratio per answer token

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"kl": self.kl, "clip_ratio": self.clipped, "ratio": self.ratio}


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    reference_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float = 0.04,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "grpo",
) -> GRPOLossOutput:
    """logps, old_logps, reference_logps, mask: (answers, tokens); advantages: (answers,). `reference_logps` may be
    None with beta 0 (no KL term, no reference pass)."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if reference_logps is None and beta:
        raise ValueError("beta > 0 needs the reference's log-probabilities")
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    high = epsilon if epsilon_high is None else epsilon_high
    clipped_ratio = ratio.clamp(1 - epsilon, 1 + high)
    advantage = advantages[:, None]
    per_token = -torch.min(ratio * advantage, clipped_ratio * advantage)
    kl = torch.zeros_like(logps)
    if reference_logps is not None:
        gap = reference_logps - logps
        kl = torch.exp(gap) - gap - 1
    per_token = per_token + beta * kl
    tokens = mask.sum().clamp(min=1)
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    else:
        loss = (per_token * mask).sum() / tokens
    was_clipped = (ratio * advantage != clipped_ratio * advantage).to(mask.dtype)
    return GRPOLossOutput(
        loss=loss,
        kl=((kl * mask).sum() / tokens).detach(),
        clipped=((was_clipped * mask).sum() / tokens).detach(),
        ratio=((ratio * mask).sum() / tokens).detach(),
    )
