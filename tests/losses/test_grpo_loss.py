"""GRPO's advantages and loss against the paper's formulas written out element by element (DeepSeekMath eq. 3 with
the k3 KL estimator of eq. 4; DAPO's token-level mean)."""

import math

import pytest
import torch

from unified_reward.losses.grpo import group_advantages, grpo_loss, token_logps

# 2 groups of 3 answers; rows: answers, columns: tokens (the third answer of each group is 2 tokens long)
LOGPS = [
    [-1.0, -0.5, -2.0],
    [-0.2, -1.5, -0.7],
    [-0.9, -0.1, 0.0],
    [-2.5, -0.3, -1.1],
    [-0.4, -0.4, -0.4],
    [-1.2, -0.6, 0.0],
]
OLD = [
    [-1.3, -0.5, -1.6],
    [-0.2, -1.1, -0.9],
    [-0.5, -0.4, 0.0],
    [-2.0, -0.3, -1.5],
    [-0.9, -0.2, -0.4],
    [-1.0, -0.9, 0.0],
]
REF = [
    [-1.1, -0.7, -1.9],
    [-0.4, -1.2, -0.6],
    [-0.8, -0.3, 0.0],
    [-2.2, -0.5, -1.0],
    [-0.5, -0.3, -0.6],
    [-1.1, -0.7, 0.0],
]
MASK = [[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0]]
REWARDS = [[1.0, 0.0, 0.5], [0.2, 0.9, 0.4]]


def paper_advantages(rewards):
    out = []
    for group in rewards:
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (len(group) - 1))
        out.append([(r - mean) / (std + 1e-4) for r in group])
    return out


def paper_loss(advantages, epsilon, beta, loss_type):
    per_answer, total, tokens = [], 0.0, 0
    for i, a in enumerate(advantages):
        terms = []
        for t in range(3):
            if not MASK[i][t]:
                continue
            ratio = math.exp(LOGPS[i][t] - OLD[i][t])
            clipped = min(max(ratio, 1 - epsilon), 1 + epsilon)
            kl = math.exp(REF[i][t] - LOGPS[i][t]) - (REF[i][t] - LOGPS[i][t]) - 1
            terms.append(-(min(ratio * a, clipped * a) - beta * kl))
        per_answer.append(sum(terms) / len(terms))
        total += sum(terms)
        tokens += len(terms)
    return sum(per_answer) / len(per_answer) if loss_type == "grpo" else total / tokens


def test_advantages_are_the_group_normalised_rewards():
    advantages = group_advantages(torch.tensor(REWARDS, dtype=torch.float64))
    expected = [a for group in paper_advantages(REWARDS) for a in group]
    assert advantages.flatten().tolist() == pytest.approx(expected, rel=1e-9)
    centred = group_advantages(torch.tensor(REWARDS), scale=False)
    assert centred[0].tolist() == pytest.approx([0.5, -0.5, 0.0], abs=1e-6)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_loss_is_the_papers_clipped_objective_with_k3_kl(loss_type):
    advantages = [a for group in paper_advantages(REWARDS) for a in group]
    output = grpo_loss(
        torch.tensor(LOGPS, dtype=torch.float64),
        torch.tensor(OLD, dtype=torch.float64),
        torch.tensor(REF, dtype=torch.float64),
        torch.tensor(advantages, dtype=torch.float64),
        torch.tensor(MASK, dtype=torch.float64),
        beta=0.04,
        epsilon=0.2,
        loss_type=loss_type,
    )
    assert output.loss.item() == pytest.approx(paper_loss(advantages, 0.2, 0.04, loss_type), rel=1e-12)
    assert 0 < output.clipped.item() < 1  # the fixed numbers put some tokens outside [0.8, 1.2]


def test_loss_gradient_is_the_policy_gradient_at_ratio_one():
    # one update per sample (old = current): d loss / d logp_t = -A / |o| per token of each answer (grpo, beta 0)
    logps = torch.tensor(LOGPS, dtype=torch.float64, requires_grad=True)
    advantages = torch.tensor([1.0, -1.0, 0.5, 0.0, 2.0, -2.0], dtype=torch.float64)
    mask = torch.tensor(MASK, dtype=torch.float64)
    grpo_loss(logps, logps.detach(), None, advantages, mask, beta=0.0).loss.backward()
    expected = -advantages[:, None] * mask / mask.sum(-1, keepdim=True) / len(advantages)
    assert torch.allclose(logps.grad, expected)


def test_a_group_with_equal_rewards_has_zero_advantage_and_no_nan():
    rewards = torch.tensor([[0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 1.0, 0.0]])
    advantages = group_advantages(rewards)
    assert advantages[0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert torch.isfinite(advantages).all()
    logps = torch.zeros(8, 3, requires_grad=True)
    output = grpo_loss(logps, logps.detach(), torch.zeros(8, 3), advantages.flatten(), torch.ones(8, 3))
    output.loss.backward()
    assert torch.isfinite(logps.grad).all()
    assert logps.grad[:4].abs().max() == 0  # the flat group moves nothing


def test_dropped_samples_leave_their_group():
    rewards = torch.tensor([[1.0, float("nan"), 0.0, 0.5], [float("nan"), 1.0, float("nan"), float("nan")]])
    advantages = group_advantages(rewards)
    assert advantages[0].tolist() == pytest.approx(
        paper_advantages([[1.0, 0.0, 0.5]])[0][:1] + [0.0] + paper_advantages([[1.0, 0.0, 0.5]])[0][1:]
    )
    assert advantages[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # one valid sample: nothing to compare it with


def test_token_logps_are_log_softmax_at_the_targets():
    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(1))
    expected = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    assert torch.allclose(token_logps(logits, targets), expected, atol=1e-6)
