import pytest

from unified_reward.models.adapters import adapter_layers, adapters_disabled
from unified_reward.models.diffusion import build_denoiser


def test_switching_the_adapter_off_and_on_leaves_every_parameter_as_trainable_as_before():
    model = build_denoiser("unet2d", sample_size=16, finetune="lora", lora_rank=4)
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    for parameter in lora[::2]:  # a caller froze half of the adapter (peft's switch would unfreeze it)
        parameter.requires_grad_(False)
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    with adapters_disabled(model):
        assert all(layer.disable_adapters for layer in adapter_layers(model))
    assert not any(layer.disable_adapters for layer in adapter_layers(model))
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before


def test_a_layer_that_was_off_stays_off():
    model = build_denoiser("unet2d", sample_size=16, finetune="lora", lora_rank=4)
    first, *rest = adapter_layers(model)
    first.enable_adapters(False)
    with adapters_disabled(model):
        pass
    assert first.disable_adapters and not any(layer.disable_adapters for layer in rest)


def test_a_model_without_adapter_is_refused():
    with pytest.raises(ValueError, match="reference=copy"), adapters_disabled(build_denoiser("unet2d", sample_size=16)):
        pass
