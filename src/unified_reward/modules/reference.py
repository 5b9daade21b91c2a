"""The DPO reference policy as one object, whichever way it is kept: `model()` gives the reference model for a
no-grad pass, `logps(batch, forward)` its log-probabilities of a batch's chosen and rejected answers.

- `AdapterReference`: the policy itself with its LoRA adapter switched off (one copy in memory; LoRA/QLoRA);
- `FrozenCopyReference`: a frozen copy made at construction (full fine-tuning); an `nn.Module`, so it follows the
  policy's device and sharding;
- `PrecomputedReference`: log-probabilities computed once, before the first step, by the initial policy, looked up
  by record id (`table`, saved in checkpoints); no reference model stays in memory.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unified_reward.models.adapters import adapter_layers, adapters_disabled, has_adapter
from unified_reward.strategies import gather_rows

log = logging.getLogger(__name__)
REFERENCES = ("adapter", "copy", "precomputed")
Forward = Callable[[nn.Module, dict[str, Any]], torch.Tensor]


class AdapterReference:
    def __init__(self, policy: nn.Module):
        if not has_adapter(policy):
            raise ValueError(
                "reference=adapter needs a LoRA or QLoRA policy (finetune=lora); "
                "with full fine-tuning use reference=copy or reference=precomputed (VLM DPO)"
            )
        self._policy = policy  # not a submodule: the policy's owner registers it
        self._layers: list[nn.Module] | None = None

    @contextmanager
    def model(self) -> Iterator[nn.Module]:
        if self._layers is None:  # found once, after any sharding: walking a 7B model's modules is not free
            self._layers = adapter_layers(self._policy)
        with adapters_disabled(self._policy, self._layers):
            yield self._policy

    def logps(self, batch: dict[str, Any], forward: Forward) -> torch.Tensor:
        with torch.no_grad(), self.model() as model:
            return forward(model, batch)


class FrozenCopyReference(nn.Module):
    def __init__(self, policy: nn.Module):
        super().__init__()
        self.copy = copy.deepcopy(policy).eval().requires_grad_(False)

    @contextmanager
    def model(self) -> Iterator[nn.Module]:
        yield self.copy

    def logps(self, batch: dict[str, Any], forward: Forward) -> torch.Tensor:
        with torch.no_grad():
            return forward(self.copy, batch)


class PrecomputedReference:
    def __init__(self):
        self.table: dict[str, tuple[float, float]] = {}

    @contextmanager
    def model(self) -> Iterator[nn.Module]:
        raise RuntimeError("no reference model in memory (reference=precomputed keeps none)")
        yield  # pragma: no cover

    @staticmethod
    @torch.no_grad()
    def table_of(model: nn.Module, batches: Iterable[dict[str, Any] | None], forward: Forward) -> dict:
        """{record id: (chosen, rejected)} log-probs of `batches` (on the model's device) under `model`, the
        initial policy, gathered from every rank."""
        was_training = model.training
        model.eval()
        table: dict[str, tuple[float, float]] = {}
        for batch in batches:
            if batch is not None and batch["records"]:
                values = forward(model, batch).tolist()
                table.update({r.id: tuple(v) for r, v in zip(batch["records"], values, strict=True)})
        model.train(was_training)
        return dict(gather_rows(list(table.items())))

    def logps(self, batch: dict[str, Any], forward: Forward | None = None) -> torch.Tensor:
        missing = [r.id for r in batch["records"] if r.id not in self.table]
        if missing:
            raise KeyError(
                f"no precomputed reference log-probs for records {missing[:3]} (of {len(missing)}); they are "
                "computed at the start of training for its train/val/test pairs (module.reference_logps_file)"
            )
        values = [self.table[r.id] for r in batch["records"]]
        return torch.tensor(values, dtype=torch.float32, device=batch["input_ids"].device)


def stored_or_computed(
    path: Path, fingerprint: str, compute: Callable[[], dict[str, tuple[float, float]]], *, write: bool
) -> dict[str, tuple[float, float]]:
    """A `PrecomputedReference` table: read from `path` if it was computed for these weights (`fingerprint`),
    else `compute()`d and (`write`, on one rank) stored there."""
    if path.exists():
        stored = torch.load(path, weights_only=True)
        if stored.get("fingerprint") == fingerprint:
            log.info("reference log-probs of %d pairs read from %s", len(stored["logps"]), path)
            return {k: tuple(v) for k, v in stored["logps"].items()}
        log.info("%s was computed for other weights; computing the reference log-probs again", path)
    table = compute()
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"fingerprint": fingerprint, "logps": table}, path)
        log.info("reference log-probs of %d pairs written to %s", len(table), path)
    return table


def upgrade_copy_keys(checkpoint: dict[str, Any], old_prefix: str) -> None:
    """Checkpoints written before the references were objects kept the frozen copy under `old_prefix`
    (`reference_model.` for VLM DPO, `reference_copy.` for Diffusion-DPO): renamed to `reference.copy.` in place."""
    state = checkpoint.get("state_dict", {})
    for key in [k for k in state if k.startswith(old_prefix)]:
        state["reference.copy." + key.removeprefix(old_prefix)] = state.pop(key)


def build_reference(kind: str, policy: nn.Module) -> AdapterReference | FrozenCopyReference | PrecomputedReference:
    if kind == "adapter":
        return AdapterReference(policy)
    if kind == "copy":
        return FrozenCopyReference(policy)
    if kind == "precomputed":
        return PrecomputedReference()
    raise ValueError(f"reference must be one of {REFERENCES}, got {kind!r}")
