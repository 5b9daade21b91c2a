import math

import pytest
import torch
import torch.nn.functional as F

from unified_reward.losses.diffusion_dpo import (
    diffusion_dpo_loss,
    per_sample_error,
    shared_noise_and_timesteps,
    split_pair_errors,
)


def wallace_reference(pred_w, pred_l, ref_w, ref_l, target_w, target_l, beta):
    """The paper's loss written out element by element, independent of our helpers."""
    losses = []
    for i in range(pred_w.shape[0]):
        ew = ((pred_w[i] - target_w[i]) ** 2).mean()
        el = ((pred_l[i] - target_l[i]) ** 2).mean()
        rw = ((ref_w[i] - target_w[i]) ** 2).mean()
        rl = ((ref_l[i] - target_l[i]) ** 2).mean()
        inside = -0.5 * beta * ((ew - rw) - (el - rl))
        losses.append(-math.log(1 / (1 + math.exp(-inside.item()))))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (3, 4, 5, 8, 8)])
def test_loss_equals_the_formula_written_out(shape):
    g = torch.Generator().manual_seed(0)
    target_w, target_l = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    pred_w, pred_l = target_w + 0.1 * torch.randn(shape, generator=g), target_l + 0.1 * torch.randn(shape, generator=g)
    ref_w, ref_l = target_w + 0.1 * torch.randn(shape, generator=g), target_l + 0.1 * torch.randn(shape, generator=g)
    beta = 500.0
    out = diffusion_dpo_loss(
        per_sample_error(pred_w, target_w),
        per_sample_error(pred_l, target_l),
        per_sample_error(ref_w, target_w),
        per_sample_error(ref_l, target_l),
        beta,
    )
    assert out.loss.item() == pytest.approx(
        wallace_reference(pred_w, pred_l, ref_w, ref_l, target_w, target_l, beta), rel=1e-5
    )


def test_beta_is_twice_the_diffusers_coefficient():
    """diffusers' example: loss = -logsigmoid(beta_dpo * (ref_diff - model_diff)) with beta_dpo = 2500."""
    g = torch.Generator().manual_seed(1)
    model_w, model_l, ref_w, ref_l = (torch.rand(6, generator=g) * 1e-3 for _ in range(4))
    diffusers_beta = 2500.0
    model_diff, ref_diff = model_w - model_l, ref_w - ref_l
    diffusers_loss = -F.logsigmoid(diffusers_beta * (ref_diff - model_diff)).mean()
    ours = diffusion_dpo_loss(model_w, model_l, ref_w, ref_l, beta=2 * diffusers_beta).loss
    torch.testing.assert_close(ours, diffusers_loss)


def test_loss_is_ln2_and_accuracy_half_when_model_equals_reference():
    errors = torch.rand(5)
    out = diffusion_dpo_loss(errors, errors.flip(0), errors, errors.flip(0), beta=5000.0)
    assert out.loss.item() == pytest.approx(math.log(2))
    assert out.implicit_accuracy.item() == 0.5  # every pair is a tie, and ties count half


def test_implicit_accuracy_counts_ties_half():
    model_w = torch.tensor([0.1, 0.3, 0.2, 0.2])
    model_l = torch.tensor([0.2, 0.2, 0.2, 0.2])
    zeros = torch.zeros(4)
    out = diffusion_dpo_loss(model_w, model_l, zeros, zeros, beta=1.0)
    # pair 0 prefers chosen, pair 1 rejected, pairs 2 and 3 are ties
    assert out.implicit_accuracy.item() == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)


def test_video_error_averages_every_axis():
    """An error on one width column must count as 1/W of the frame, not vanish or dominate."""
    b, c, f, h, w = 2, 3, 4, 5, 6
    prediction = torch.zeros(b, c, f, h, w)
    prediction[0, :, :, :, 0] = 1.0  # sample 0 is wrong in the first column of every frame
    error = per_sample_error(prediction, torch.zeros_like(prediction))
    assert error.tolist() == pytest.approx([1 / w, 0.0])
    # a reduction that left the width axis out (mean over c, f, h only) would give shape (b, w)
    left_out = (prediction**2).mean(dim=(1, 2, 3))
    assert left_out.shape != error.shape


def test_per_sample_error_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        per_sample_error(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5))


def test_pairs_share_noise_and_timesteps():
    noise, timesteps = torch.randn(3, 2, 4, 4), torch.tensor([5, 600, 999])
    both_noise, both_t = shared_noise_and_timesteps(noise, timesteps)
    chosen_noise, rejected_noise = split_pair_errors(both_noise)
    assert torch.equal(chosen_noise, rejected_noise) and torch.equal(*split_pair_errors(both_t))


def test_split_refuses_odd_batches():
    with pytest.raises(ValueError, match="even"):
        split_pair_errors(torch.zeros(3))
