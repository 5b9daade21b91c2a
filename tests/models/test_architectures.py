import pytest
import torch

from unified_reward.models.architectures import SD15_UNET, VLM_ARCHITECTURES, vlm_architecture
from unified_reward.models.builders import _model_class

# the parameter counts of the released checkpoints (their model cards and safetensors indexes)
RELEASED = {"qwen2_vl_2b": 2.209e9, "qwen2_vl_7b": 8.291e9, "qwen2_5_vl_3b": 3.755e9, "qwen2_5_vl_7b": 8.292e9}


@pytest.mark.parametrize("name", sorted(VLM_ARCHITECTURES))
def test_written_out_architectures_have_the_released_sizes(name):
    spec = VLM_ARCHITECTURES[name]
    with torch.device("meta"):
        model = _model_class(spec.family)._from_config(spec.config())
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(RELEASED[name], rel=1e-3)
    assert vlm_architecture(spec.hub_id) is spec


def test_sd15_unet_has_the_released_size():
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964


def test_another_depth_keeps_the_widths():
    config = vlm_architecture("qwen2_5_vl_7b").config(decoder_layers=2, vision_depth=4)
    assert (config.text_config.num_hidden_layers, config.vision_config.depth) == (2, 4)
    assert config.text_config.hidden_size == 3584 and config.vision_config.fullatt_block_indexes == [3]
    with pytest.raises(ValueError, match="known: "):
        vlm_architecture("Qwen/Qwen9-VL")
