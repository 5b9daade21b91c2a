"""Switching a LoRA / QLoRA adapter off and on, through peft's public layer API, for VLMs and denoisers alike:
the base model under the adapter is the DPO reference with one copy of the weights in memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn


def adapter_layers(model: nn.Module) -> list[nn.Module]:
    """The model's peft tuner layers (LoRA, QLoRA), in module order."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def has_adapter(model: nn.Module) -> bool:
    return bool(adapter_layers(model))


@contextmanager
def adapters_disabled(model: nn.Module, layers: Sequence[nn.Module] | None = None) -> Iterator[nn.Module]:
    """`model` with its adapter layers switched off (`enable_adapters(False)`), then back as they were: the same
    layers enabled and every parameter as trainable as before (peft's switch also sets `requires_grad`). `layers`:
    `adapter_layers(model)`, if the caller keeps them (walking a 7B model's modules every step is not free)."""
    layers = adapter_layers(model) if layers is None else layers
    if not layers:
        raise ValueError("the model has no LoRA adapter to disable; use reference=copy for full fine-tuning")
    enabled = [layer for layer in layers if not layer.disable_adapters]
    trainable = [(p, p.requires_grad) for layer in layers for p in layer.parameters(recurse=True)]
    for layer in enabled:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer in enabled:
            layer.enable_adapters(True)
        for parameter, requires_grad in trainable:
            parameter.requires_grad_(requires_grad)
