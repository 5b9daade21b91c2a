import pytest
import torch

from unified_reward.generation.noise import NoiseObjective


def test_epsilon_and_velocity_targets_follow_the_ddpm_formulas():
    clean, noise = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    t = torch.tensor([0, 400, 999])
    eps = NoiseObjective("epsilon", beta_schedule="linear")
    alphas = eps.ddpm.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(eps.noisy(clean, noise, t), alphas.sqrt() * clean + (1 - alphas).sqrt() * noise)
    torch.testing.assert_close(eps.target(clean, noise, t), noise)
    v = NoiseObjective("v_prediction", beta_schedule="linear")
    torch.testing.assert_close(v.target(clean, noise, t), alphas.sqrt() * noise - (1 - alphas).sqrt() * clean)


def test_flow_matching_interpolates_and_targets_noise_minus_data():
    objective = NoiseObjective("flow")
    clean, noise = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t = torch.tensor([250.0, 900.0])
    s = torch.tensor([0.25, 0.9]).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(objective.noisy(clean, noise, t), (1 - s) * clean + s * noise)
    torch.testing.assert_close(objective.target(clean, noise, t), noise - clean)


def test_flow_timesteps_are_logit_normal_inside_the_range():
    objective = NoiseObjective("flow", logit_mean=0.0, logit_std=1.0)
    t = objective.draw_timesteps(20000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert t.min() > 0 and t.max() < 1000
    logits = torch.logit(t / 1000)
    assert logits.mean().item() == pytest.approx(0.0, abs=0.05)
    assert logits.std().item() == pytest.approx(1.0, abs=0.05)


def test_unknown_prediction_is_refused():
    with pytest.raises(ValueError, match="epsilon, v_prediction or flow"):
        NoiseObjective("sample")
