"""From a few measured depths to any depth and any number of FSDP ranks.

A decoder layer adds the same bytes to each category (weights, gradients, optimizer state, activations), so two
depths give a line per category (`LayerFit`), and the full depth is extrapolated from 1 and 2 layers (the tests
check the line against a 4-layer measurement). `fsdp_per_device` spreads a step over N ranks as FULL_SHARD does
with this project's wrapping (`strategies.py`: one unit per decoder layer; the root unit, holding the embeddings,
the LM head and the vision tower, is gathered for the whole step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from unified_reward.sizing.measure import GIB, PhaseMemory, StepMemory


def _combine(first: StepMemory, second: StepMemory, rule) -> StepMemory:
    """`rule(a, b)` applied to every number of two StepMemory records, field by field."""

    def phase(a: PhaseMemory, b: PhaseMemory) -> PhaseMemory:
        return PhaseMemory(**{f.name: round(rule(getattr(a, f.name), getattr(b, f.name))) for f in fields(a)})

    return StepMemory(
        phase(first.backward, second.backward),
        phase(first.update, second.update),
        round(rule(first.activation_peak, second.activation_peak)),
    )


@dataclass(frozen=True)
class LayerFit:
    fixed: StepMemory  # the bytes at zero decoder layers
    per_layer: StepMemory  # the bytes one decoder layer adds

    def at(self, layers: int) -> StepMemory:
        """Each phase on its own line: the larger of the two is the step's peak at that depth."""
        return _combine(self.fixed, self.per_layer, lambda fixed, per_layer: fixed + layers * per_layer)


def fit_layers(shallow: StepMemory, deep: StepMemory, shallow_layers: int = 1, deep_layers: int = 2) -> LayerFit:
    """The line through two measurements at different decoder depths, per phase and category."""
    span = deep_layers - shallow_layers
    if span <= 0:
        raise ValueError("the deeper measurement must have more decoder layers")
    per_layer = _combine(deep, shallow, lambda d, s: (d - s) / span)
    fixed = _combine(shallow, per_layer, lambda s, p: s - shallow_layers * p)
    return LayerFit(fixed, per_layer)


@dataclass(frozen=True)
class DeviceEstimate:
    """Estimated peak bytes on one device and where they go."""

    sharded_states: int  # this rank's shard of weights, gradients and optimizer state
    gathered_weights: int  # the other ranks' shards of the units held whole at once
    activations: int
    total: int

    def gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 2) for k, v in asdict(self).items()}


def single_device(step: StepMemory) -> DeviceEstimate:
    states = step.weights + step.gradients + step.optimizer
    return DeviceEstimate(states, 0, step.activations, step.peak)


def fsdp_per_device(fit: LayerFit, layers: int, devices: int) -> DeviceEstimate:
    """FULL_SHARD over `devices` ranks: every parameter-shaped state split N ways, plus the gathered root unit
    and two decoder layers (the running one and the prefetched next), plus the unsharded activation peak. Each
    part's own peak is added, so the total is an upper bound on the step's peak."""
    if devices == 1:
        return single_device(fit.at(layers))
    full = fit.at(layers)
    states = full.backward.weights + full.update.gradients + full.backward.optimizer  # the update holds every gradient
    root_and_two_layers = fit.fixed.backward.weights + 2 * fit.per_layer.backward.weights
    gathered = round(root_and_two_layers * (1 - 1 / devices))
    sharded = round(states / devices)
    return DeviceEstimate(sharded, gathered, full.activation_peak, sharded + gathered + full.activation_peak)
