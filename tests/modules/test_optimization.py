import math
from functools import partial
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.modules.optimization import (
    adamw,
    configure_optimization,
    describe,
    vision_scaled_groups,
    warmup_cosine,
)
from unified_reward.synthetic.vocabulary import world_vocabulary

TINY = {"hidden_size": 64, "num_hidden_layers": 2}
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "module"


@pytest.mark.parametrize(
    ("family", "vision_prefixes"),
    [("qwen2_vl", ("model.visual.",)), ("llava_onevision", ("model.vision_tower.", "model.multi_modal_projector."))],
)
def test_vision_group_holds_exactly_the_tower_and_projector(family, vision_prefixes):
    model = build_vlm(family, build_processor(family, tiny_vocabulary=world_vocabulary()), tiny=TINY)
    language, vision = vision_scaled_groups(model, 5.0)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].startswith(vision_prefixes) for p in vision["params"]} == {True}
    assert {names[id(p)].startswith(vision_prefixes) for p in language["params"]} == {False}
    assert len(vision["params"]) + len(language["params"]) == len(list(model.parameters()))
    assert (language["lr_scale"], vision["lr_scale"]) == (1.0, 5.0)
    assert (language["name"], vision["name"]) == ("language", "vision")  # lr-AdamW/vision in TensorBoard


def expected_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """Linear warm-up from 0, then half a cosine from 1 down to `floor` at the last step (written out here)."""
    if step < warmup:
        return step / warmup
    progress = (step - warmup) / (total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def test_scaled_groups_keep_their_ratio_through_the_schedule():
    model = build_vlm("qwen2_vl", build_processor("qwen2_vl", tiny_vocabulary=world_vocabulary()), tiny=TINY)
    configured = configure_optimization(
        vision_scaled_groups(model, 5.0),
        adamw(1e-3),
        partial(warmup_cosine, warmup_ratio=0.2, min_lr_rate=0.1),
        total_steps=10,
    )
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    for step in range(11):
        language, vision = (group["lr"] for group in optimizer.param_groups)
        expected = 1e-3 * expected_factor(step, 10, 2, 0.1)
        assert language == pytest.approx(expected) and vision == pytest.approx(5 * expected)
        optimizer.step()
        schedule.step()


def test_module_config_components_build_the_same_optimizer():
    """The module configs' `optimizer` / `scheduler` nodes are partials Hydra builds; the module adds parameters."""
    for name in ("reward_sft", "vlm_dpo", "diffusion_dpo", "base_pretrain"):
        config = OmegaConf.load(CONFIGS / f"{name}.yaml")
        optimizer = hydra.utils.instantiate(config.optimizer)
        scheduler = hydra.utils.instantiate(config.scheduler)
        layer = torch.nn.Linear(2, 2)
        configured = configure_optimization(layer.parameters(), optimizer, scheduler, total_steps=100)
        assert isinstance(configured["optimizer"], torch.optim.AdamW)
        assert configured["optimizer"].param_groups[0]["weight_decay"] == config.optimizer.weight_decay
        warmup = int(config.scheduler.warmup_ratio * 100)
        peak = config.optimizer.lr * expected_factor(0, 100, warmup, config.scheduler.min_lr_rate)
        assert configured["optimizer"].param_groups[0]["lr"] == pytest.approx(peak)
        assert describe(optimizer).startswith("AdamW(lr=")


def test_frozen_tower_leaves_one_group():
    model = build_vlm(
        "qwen2_vl", build_processor("qwen2_vl", tiny_vocabulary=world_vocabulary()), tiny=TINY, freeze_vision=True
    )
    configured = configure_optimization(
        vision_scaled_groups(model, 5.0), adamw(1e-3), partial(warmup_cosine, min_lr_rate=0.0), total_steps=4
    )
    (group,) = configured["optimizer"].param_groups
    assert all(p.requires_grad for p in group["params"])
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_plain_parameters_still_work():
    layer = torch.nn.Linear(3, 2)
    configured = configure_optimization(
        layer.parameters(), adamw(0.1), partial(warmup_cosine, warmup_ratio=0.5), total_steps=4
    )
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert [g["lr"] for g in optimizer.param_groups] == [0.0]  # warm-up starts from zero
    optimizer.step()
    schedule.step()
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.05)]


def test_no_scheduler_keeps_the_optimizers_rate():
    layer = torch.nn.Linear(3, 2)
    configured = configure_optimization(layer.parameters(), adamw(0.1), None, total_steps=4)
    assert set(configured) == {"optimizer"} and configured["optimizer"].param_groups[0]["lr"] == 0.1
