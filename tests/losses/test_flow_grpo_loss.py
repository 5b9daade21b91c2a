"""Flow-GRPO's SDE step against diffusers' Euler step (eta 0) and against the marginals it must keep (a Gaussian data
distribution, whose exact velocity field is known), its log-probability against torch.distributions."""

import math

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from unified_reward.losses.flow_grpo import flow_grpo_step_loss, gaussian_log_prob, sde_step_mean_std, step_kl


def test_without_noise_the_step_is_diffusers_euler_step():
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(5)
    x, velocity = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    sigmas = scheduler.sigmas.tolist()
    scheduler._step_index = 1  # the second step: sigma 0.8 -> 0.6
    expected = scheduler.step(velocity, scheduler.timesteps[1], x).prev_sample
    mean, std = sde_step_mean_std(x, velocity, sigmas[1], sigmas[2], eta=0.0, sigma_cap=sigmas[1])
    assert std == 0.0
    assert torch.allclose(mean, expected, atol=1e-6)


def _gaussian_velocity(x, sigma, m, s0):
    # x_s = (1 - s) x0 + s e with x0 ~ N(m, s0^2): the exact E[e - x0 | x_s = x]
    variance = (1 - sigma) ** 2 * s0**2 + sigma**2
    centred = x - (1 - sigma) * m
    noise = sigma / variance * centred
    data = m + (1 - sigma) * s0**2 / variance * centred
    return noise - data


def test_the_sde_keeps_the_flows_marginals():
    m, s0, steps = 1.5, 0.5, 200
    sigmas = torch.linspace(1, 0, steps + 1).tolist()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 1, generator=generator)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        mean, std = sde_step_mean_std(
            x, _gaussian_velocity(x, sigma, m, s0), sigma, sigma_next, eta=0.7, sigma_cap=sigmas[1]
        )
        x = mean + std * torch.randn(mean.shape, generator=generator)
        if sigma_next == 0.5:  # half way: the flow's own marginal there
            assert abs(x.mean().item() - 0.5 * m) < 0.03
            assert abs(x.std().item() - math.sqrt(0.25 * s0**2 + 0.25)) < 0.03
    assert abs(x.mean().item() - m) < 0.03 and abs(x.std().item() - s0) < 0.03


def test_log_prob_and_kl_are_the_gaussians_averaged_over_elements():
    mean, sample, other = torch.randn(3, 2, 5).unbind()
    std = 0.3
    expected = torch.distributions.Normal(mean, std).log_prob(sample).mean(-1)
    assert torch.allclose(gaussian_log_prob(sample, mean, std), expected, atol=1e-6)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, std), torch.distributions.Normal(other, std)
    )
    assert torch.allclose(step_kl(mean, other, std), kl.mean(-1), atol=1e-6)


def test_zero_advantage_moves_nothing():
    log_prob = torch.zeros(4, requires_grad=True)
    loss, metrics = flow_grpo_step_loss(log_prob, log_prob.detach(), torch.zeros(4))
    loss.backward()
    assert loss.item() == 0.0 and log_prob.grad.abs().max() == 0 and metrics["ratio"] == 1.0
