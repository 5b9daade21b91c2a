"""Distributed strategies, and the checks that reject incompatible choices before anything starts.

`fsdp_strategy` gives Lightning's `FSDPStrategy` on GPUs and, where that strategy refuses the CPU,
a `ModelParallelStrategy` whose modules shard themselves with FSDP2 (`fully_shard`) in
`configure_model` (see `shard_with_fsdp2`).
"""

from __future__ import annotations

from typing import Any

from torch import nn


def _decoder_layer_classes() -> set[type]:
    """The language model's blocks. Vision blocks stay in the root unit on purpose: a batch without
    images (or videos) skips the vision tower, and per-block all-gathers there would then differ
    between ranks and deadlock; the root unit is gathered on every forward whatever the batch holds."""
    from unified_reward.models.families import FAMILY_TABLE

    return {layer for family in FAMILY_TABLE.values() for layer in family.decoder_layer_classes()}


def fsdp_strategy(
    accelerator: str = "auto", devices: int = 1, num_nodes: int = 1, cpu_offload: bool = False, **kwargs: Any
):
    import torch
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    on_gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return FSDPStrategy(
            auto_wrap_policy=_decoder_layer_classes(),
            activation_checkpointing_policy=None,
            sharding_strategy="FULL_SHARD",
            state_dict_type="sharded",
            cpu_offload=cpu_offload,
            use_orig_params=True,  # LoRA: frozen and trainable parameters share flat buffers
            **kwargs,
        )
    return ModelParallelStrategy(data_parallel_size=int(devices) * int(num_nodes), tensor_parallel_size=1, **kwargs)


def shard_with_fsdp2(model: nn.Module, mesh) -> None:
    """FSDP2: shard every transformer block, then the rest of the model, over the data-parallel mesh."""
    from torch.distributed.fsdp import fully_shard

    classes = tuple(_decoder_layer_classes())
    for module in model.modules():
        if isinstance(module, classes):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)


def shard_for_strategy(trainer, model: nn.Module, device_mesh) -> bool:
    """In `configure_model`: shard `model` with FSDP2 under `ModelParallelStrategy`; True when it did."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    if not isinstance(trainer.strategy, ModelParallelStrategy):
        return False
    shard_with_fsdp2(model, device_mesh["data_parallel"])
    return True


def is_sharded(model: nn.Module) -> bool:
    """Whether the weights are split across ranks (FSDP2 DTensors or FSDP1 units): then every rank must take part in
    each forward, and `generate` must run with `synced_gpus`. Under DDP each rank holds all weights and generates
    alone (syncing there would hang ranks that were given fewer batches)."""
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in model.parameters()):
        return True
    return any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules())


def full_state_dict_if_sharded(trainer, model: nn.Module) -> dict[str, Any] | None:
    """The full weights of a sharded model (every rank must call this; all take part in the gather);
    None when the model is not sharded and its own `state_dict` is complete."""
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    if not isinstance(trainer.strategy, FSDPStrategy | ModelParallelStrategy):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def gather_rows(rows: list) -> list:
    """Every rank's rows, concatenated in rank order (a collective: every rank must call it); the rows
    themselves where no process group is running."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return rows
    everyone: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, rows)
    return [row for part in everyone for row in part]


def check_compatibility(trainer_cfg: Any, model_cfg: Any) -> None:
    """Fail at start, with what to do instead, on choices that would break later."""
    strategy = str(trainer_cfg.get("strategy", ""))
    uses_fsdp = "fsdp" in strategy.lower() or "FSDP" in strategy or "ModelParallel" in strategy
    plugins = str(trainer_cfg.get("plugins", "") or "")
    precision = str(trainer_cfg.get("precision", ""))
    if uses_fsdp and ("Bitsandbytes" in plugins or precision.startswith("nf4") or precision.startswith("int8")):
        raise ValueError(
            "Lightning's bitsandbytes precision plugin cannot be combined with FSDP. Quantize through the model "
            "instead: model=<name>_qlora (transformers' BitsAndBytesConfig) with model.backbone.quant_storage=bfloat16."
        )
    backbone = (model_cfg or {}).get("backbone") or {}
    if uses_fsdp and backbone.get("finetune") == "qlora" and not backbone.get("quant_storage"):
        raise ValueError(
            "QLoRA under FSDP needs the 4-bit weights stored in a float type so FSDP can shard them: "
            "set model.backbone.quant_storage=bfloat16."
        )
