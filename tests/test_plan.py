import pytest

from unified_reward.errors import UserError
from unified_reward.plan import main, parse, plan_lines
from unified_reward.sizing.fit import LayerFit, fit_layers, fsdp_per_device
from unified_reward.sizing.measure import PhaseMemory, StepMemory


def test_arguments_are_checked_before_anything_is_measured(capsys):
    assert parse(["model=qwen2_5_vl_7b_qlora"]).strategy == "single"
    assert parse(["model=qwen2_5_vl_7b", "devices=8"]).strategy == "fsdp"
    for bad in (["devices=8"], ["model=x", "colour=red"], ["model=x", "strategy=ddp"], ["model=x", "objective=ppo"]):
        with pytest.raises(UserError):
            parse(bad)
    with pytest.raises(UserError, match="known: "):
        plan_lines(parse(["model=no_such_model"]))
    with pytest.raises(UserError, match="tiny model"):
        plan_lines(parse(["model=qwen2_5_vl_tiny"]))
    assert main(["model=no_such_model"]) == 2
    assert "no model config" in capsys.readouterr().err


def test_fsdp_spreads_states_and_gathers_the_root_unit_and_two_layers():
    gib = 2**30

    def step(weights, gradients, optimizer, activations):
        backward = PhaseMemory(weights, 0, optimizer, activations, weights + optimizer + activations)
        update = PhaseMemory(weights, gradients, optimizer, 0, weights + gradients + optimizer)
        return StepMemory(backward, update, activations)

    fit = LayerFit(fixed=step(4 * gib, 4 * gib, 8 * gib, 2 * gib), per_layer=step(gib, gib, 2 * gib, 0))
    estimate = fsdp_per_device(fit, layers=28, devices=8)
    states = (4 + 28) * gib * 4  # weights + gradients + 2 optimizer moments, each (4 + 28) GiB
    assert estimate.sharded_states == states // 8
    assert estimate.gathered_weights == round((4 + 2) * gib * 7 / 8)
    assert estimate.activations == 2 * gib
    assert estimate.total == estimate.sharded_states + estimate.gathered_weights + estimate.activations
    assert fsdp_per_device(fit, layers=28, devices=1).total == (4 + 28) * 4 * gib  # the update's peak


def test_the_step_peak_is_the_larger_phase_at_each_depth():
    gib = 2**30
    # activations dominate at one layer, the update (gradients + optimizer) from a few layers on
    shallow = StepMemory(
        PhaseMemory(gib, 0, 2 * gib, 8 * gib, 11 * gib), PhaseMemory(gib, gib, 2 * gib, 0, 4 * gib), 8 * gib
    )
    deep = StepMemory(
        PhaseMemory(2 * gib, 0, 4 * gib, 8 * gib, 14 * gib), PhaseMemory(2 * gib, 2 * gib, 4 * gib, 0, 8 * gib), 8 * gib
    )
    fit = fit_layers(shallow, deep)
    assert fit.at(1).peak == 11 * gib and fit.at(1).activations == 8 * gib
    assert fit.at(10).peak == 40 * gib and fit.at(10).gradients == 10 * gib  # 8 + 32 < 40: the update's


@pytest.mark.slow
def test_plan_of_the_7b_qlora_judge(capsys):
    assert main(["model=qwen2_5_vl_7b_qlora"]) == 0
    out = capsys.readouterr().out
    assert "qwen2_5_vl_7b (28 decoder layers), qlora" in out and "reward_sft:" in out
