import pytest
import torch

from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.modules.optimization import adamw_warmup_cosine, vision_scaled_groups, warmup_cosine
from unified_reward.synthetic.vocabulary import world_vocabulary

TINY = {"hidden_size": 64, "num_hidden_layers": 2}


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


def test_scaled_groups_keep_their_ratio_through_the_schedule():
    model = build_vlm("qwen2_vl", build_processor("qwen2_vl", tiny_vocabulary=world_vocabulary()), tiny=TINY)
    configured = adamw_warmup_cosine(
        vision_scaled_groups(model, 5.0), lr=1e-3, weight_decay=0.0, total_steps=10, warmup_ratio=0.2, min_lr_ratio=0.1
    )
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    for step in range(6):
        language, vision = (group["lr"] for group in optimizer.param_groups)
        expected = 1e-3 * warmup_cosine(step, 10, 2, 0.1)
        assert language == pytest.approx(expected) and vision == pytest.approx(5 * expected)
        optimizer.step()
        schedule.step()


def test_frozen_tower_leaves_one_group():
    model = build_vlm(
        "qwen2_vl", build_processor("qwen2_vl", tiny_vocabulary=world_vocabulary()), tiny=TINY, freeze_vision=True
    )
    configured = adamw_warmup_cosine(
        vision_scaled_groups(model, 5.0), lr=1e-3, weight_decay=0.0, total_steps=4, warmup_ratio=0.0, min_lr_ratio=0.0
    )
    (group,) = configured["optimizer"].param_groups
    assert all(p.requires_grad for p in group["params"])
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_plain_parameters_still_work():
    layer = torch.nn.Linear(3, 2)
    configured = adamw_warmup_cosine(
        layer.parameters(), lr=0.1, weight_decay=0.0, total_steps=4, warmup_ratio=0.5, min_lr_ratio=0.0
    )
    assert [g["lr"] for g in configured["optimizer"].param_groups] == [pytest.approx(0.05)]
