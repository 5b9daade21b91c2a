"""What the LightningModules' hooks share, written once: the batch moved to the device, the optimizer and schedule
from a module's factories, and the export of a model that may be sharded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from unified_reward.modules.optimization import configure_optimization
from unified_reward.modules.reference import FrozenCopyReference
from unified_reward.strategies import full_state_dict_if_sharded, shard_for_strategy


def move_tensors(batch: Any, device: torch.device) -> Any:
    """`transfer_batch_to_device`: the tensors of a batch (also inside its dicts) on `device`; records, examples and
    skip counts stay on the host (the judge and the probes move what they encode); None, a batch the collator
    emptied, stays None."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: move_tensors(value, device) for key, value in batch.items()}
    return batch


def optimization(module, parameters) -> dict:
    """`configure_optimizers`: the module's optimizer and scheduler factories over `parameters` (or groups), the
    schedule as long as the trainer's optimizer steps."""
    return configure_optimization(
        parameters, module.optimizer_factory, module.scheduler_factory, module.trainer.estimated_stepping_batches
    )


def export_gathered(module, model: nn.Module, write: Callable[[dict[str, Any] | None], None]) -> None:
    """`export`, called on every rank: a sharded `model`'s full state is gathered (a collective), then rank zero
    writes (`write(state)`, state None when the model is not sharded)."""
    state = full_state_dict_if_sharded(module.trainer, model)
    if module.trainer.is_global_zero:
        write(state)


def shard_with_reference(module, model: nn.Module, reference) -> bool:
    """`configure_model` of a policy with a reference: `model` sharded for the trainer's strategy and, when it was,
    a frozen reference copy (`reference.copy`) alike; whether it was sharded."""
    sharded = shard_for_strategy(module.trainer, model, module.device_mesh)
    if sharded and isinstance(reference, FrozenCopyReference):
        shard_for_strategy(module.trainer, reference.copy, module.device_mesh)
    return sharded
