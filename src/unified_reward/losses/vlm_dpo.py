"""DPO losses for VLM policies, as pure functions of per-sequence log-probabilities.

Log-probabilities are SUMS over the completion tokens (the answer), never over the prompt.
With delta = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected):
- sigmoid (DPO):  -log sigmoid(beta * delta)   (with label smoothing e: -(1-e) log s(b d) - e log s(-b d))
- hinge (SLiC):   relu(1 - beta * delta)
- ipo:            (delta_avg - 1 / (2 beta))^2, where delta_avg uses log-ratios divided by each completion's
                  token count (the normalisation TRL settled on with the IPO authors)
The SFT term of the official recipe (loss = alpha * DPO + gamma * SFT) is the mean negative log-likelihood
per chosen token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "hinge", "ipo")


def completion_logps(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(target) over the masked positions of each row.

    logits (..., n, vocab) predict targets (..., n); mask (..., n) is 1 on completion tokens. Computed in
    float32 with `cross_entropy`, which never materialises the full log-softmax twice.
    """
    flat = -F.cross_entropy(logits.float().flatten(0, -2), targets.flatten().clamp(min=0), reduction="none")
    return (flat.view(targets.shape) * mask).sum(-1)


@dataclass
class PreferenceLossOutput:
    loss: torch.Tensor  # mean over pairs
    losses: torch.Tensor  # per pair
    chosen_rewards: torch.Tensor  # beta * (logp_chosen - ref_chosen), detached
    rejected_rewards: torch.Tensor

    def metrics(self) -> dict[str, torch.Tensor]:
        margins = self.chosen_rewards - self.rejected_rewards
        return {
            "rewards/chosen": self.chosen_rewards.mean(),
            "rewards/rejected": self.rejected_rewards.mean(),
            "rewards/accuracies": (margins > 0).float().mean(),
            "rewards/margins": margins.mean(),
        }


def preference_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> PreferenceLossOutput:
    """The DPO-family loss of a batch of pairs (all inputs: (pairs,) summed log-probabilities)."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    chosen_ratio = policy_chosen - reference_chosen
    rejected_ratio = policy_rejected - reference_rejected
    delta = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * delta) - label_smoothing * F.logsigmoid(-beta * delta)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * delta)
    else:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("the ipo loss needs the completion lengths (token counts) of chosen and rejected")
        average_delta = chosen_ratio / chosen_lengths.clamp(min=1) - rejected_ratio / rejected_lengths.clamp(min=1)
        losses = (average_delta - 1 / (2 * beta)) ** 2
    return PreferenceLossOutput(
        loss=losses.mean(),
        losses=losses,
        chosen_rewards=beta * chosen_ratio.detach(),
        rejected_rewards=beta * rejected_ratio.detach(),
    )


def check_loss(loss) -> None:
    """Fail at construction, not at the first step, on a DPO loss type that does not exist."""
    loss_type = getattr(loss, "keywords", {}).get("loss_type", "sigmoid")
    if getattr(loss, "func", None) is preference_loss and loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def sft_loss(chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per chosen-answer token over the batch."""
    return -chosen_logps.sum() / chosen_lengths.sum().clamp(min=1)
