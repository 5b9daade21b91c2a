"""Peak memory of one training step at real width, measured on fake tensors (`fake_step`): every tensor the step
allocates is counted by category, with no compute and no memory spent, on the CPU.

- `measure_vlm_step`: a released VLM architecture (`models.architectures`) at some decoder depth with its real
  vision tower; one image and `tokens` tokens per sequence. Objectives: `reward_sft` (the judge's step,
  `judge_sft_loss`), `dpo` (chosen and rejected rows with the image, the reference through
  `modules.reference`: the policy with its adapter off for LoRA/QLoRA, a frozen copy for full fine-tuning) and
  `dpo_precomputed` (no reference model). Methods: `full` (bf16 weights, AdamW), `lora`, `qlora`.
- `measure_diffusion_dpo_step`: SD1.5's UNet, a winner and a loser latent with the same noise, the reference
  pass without grad.

QLoRA cannot run on fake tensors (bitsandbytes quantizes real data), so `qlora` runs the LoRA step with the
parameters peft's `prepare_model_for_kbit_training` leaves unquantized upcast to float32, as it does, and then
counts each 4-bit weight at its NF4 storage size (`nf4_bytes`, checked against bitsandbytes' own tensors in the
tests) plus one dequantized bf16 weight as a transient: an estimate built on a measurement, stated as such.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from unified_reward.models.architectures import VLMArchitecture, vlm_architecture
from unified_reward.models.builders import DTYPES, QUANTIZATION_SKIPPED_MODULES, build_vlm_from_architecture
from unified_reward.sizing.fake_step import IndexAwareFakeMode, RealMode, StepMemoryTracker, moves_in_place

Method = Literal["full", "lora", "qlora"]
Objective = Literal["reward_sft", "dpo", "dpo_precomputed"]
METHODS: tuple[Method, ...] = ("full", "lora", "qlora")
OBJECTIVES: tuple[Objective, ...] = ("reward_sft", "dpo", "dpo_precomputed")
GIB = 1024**3


@dataclass(frozen=True)
class PhaseMemory:
    """Bytes by category at the peak of one phase of a step, and that peak."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # activations and temporaries
    peak: int


@dataclass(frozen=True)
class StepMemory:
    """One step's peaks: while forward and backward run (activations live) and while the optimizer updates
    (gradients and its temporaries live); the step's peak is the larger, and which one it is can change with
    depth, so each is fitted on its own (`sizing.fit`)."""

    backward: PhaseMemory
    update: PhaseMemory
    activation_peak: int  # activations and temporaries alone, at their own peak

    @property
    def at_peak(self) -> PhaseMemory:
        return self.update if self.update.peak > self.backward.peak else self.backward

    @property
    def peak(self) -> int:
        return self.at_peak.peak

    @property
    def weights(self) -> int:
        return self.at_peak.weights

    @property
    def gradients(self) -> int:
        return self.at_peak.gradients

    @property
    def optimizer(self) -> int:
        return self.at_peak.optimizer

    @property
    def activations(self) -> int:
        return self.at_peak.activations

    def gib(self) -> dict[str, float]:
        at_peak = {k: round(v / GIB, 3) for k, v in asdict(self.at_peak).items()}
        return at_peak | {"activation_peak": round(self.activation_peak / GIB, 3)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> StepMemory:
        return cls(PhaseMemory(**values["backward"]), PhaseMemory(**values["update"]), values["activation_peak"])


def nf4_bytes(numel: int, blocksize: int = 64, double_quant: bool = True) -> int:
    """Bytes bitsandbytes holds for one NF4 weight: 4 bits a value, an absmax per block of 64 values and the
    16-value NF4 code; with double quantization the absmaxes are 8-bit, with a float32 absmax per 256 of them,
    their own 256-value code and an offset (tested against bitsandbytes' own tensors)."""
    blocks = math.ceil(numel / blocksize)
    packed, code = math.ceil(numel / 2), 16 * 4
    if not double_quant:
        return packed + 4 * blocks + code
    return packed + blocks + code + 4 * math.ceil(blocks / 256) + 256 * 4 + 4


def _grid(visual_tokens: int) -> tuple[int, int]:
    """An image grid (patch rows, patch columns) whose 2x2 merge gives `visual_tokens`, as square as possible."""
    rows = max(d for d in range(1, int(math.isqrt(visual_tokens)) + 1) if visual_tokens % d == 0)
    return 2 * rows, 2 * (visual_tokens // rows)


def _vlm_inputs(spec, rows: int, tokens: int, visual_tokens: int, answer_tokens: int) -> dict[str, torch.Tensor]:
    ids = spec.special_ids
    height, width = _grid(visual_tokens)
    input_ids = torch.full((rows, tokens), 100, dtype=torch.long)
    token_types = torch.zeros((rows, tokens), dtype=torch.long)
    start = 16
    input_ids[:, start - 1] = ids["vision_start_token_id"]
    input_ids[:, start : start + visual_tokens] = ids["image_token_id"]
    input_ids[:, start + visual_tokens] = ids["vision_end_token_id"]
    token_types[:, start : start + visual_tokens] = 1
    labels = torch.full_like(input_ids, -100)
    labels[:, -answer_tokens:] = 100
    return {
        "input_ids": input_ids,
        "mm_token_type_ids": token_types,
        "image_grid_thw": torch.tensor([[1, height, width]] * rows),
        "labels": labels,
    }


def _quantized_linears(model: nn.Module) -> list[nn.Linear]:
    """The linear layers bitsandbytes would hold in 4 bit (the language model's; builders skip the rest)."""
    return [
        m
        for name, m in model.named_modules()
        if type(m) is nn.Linear and not any(s in name for s in QUANTIZATION_SKIPPED_MODULES)
    ]


def _set_frozen_dtypes(model: nn.Module, method: Method, dtype: torch.dtype) -> list[int]:
    """A model built in float32 (peft's adapter moves fail on fake tensors of another dtype) given the dtypes of
    the real run: LoRA's frozen base in `dtype` (its adapters stay float32, as peft keeps them); QLoRA's 4-bit
    weights in `dtype` as dequantized, and every other parameter float32, as prepare_model_for_kbit_training
    leaves them. Returns the sizes of the 4-bit weights."""
    if method == "lora":
        for parameter in model.parameters():
            if not parameter.requires_grad:
                parameter.data = parameter.data.to(dtype)
        return []
    linears = _quantized_linears(model)
    for linear in linears:
        linear.weight.data = linear.weight.data.to(dtype)
    return [linear.weight.numel() for linear in linears]


def measure_vlm_step(
    architecture: str | VLMArchitecture,
    *,
    decoder_layers: int,
    method: Method = "full",
    objective: Objective = "reward_sft",
    gradient_checkpointing: bool = True,
    tokens: int = 2048,
    visual_tokens: int = 512,
    answer_tokens: int = 256,
    lora_rank: int = 64,
    lora_alpha: int = 128,
    vision_depth: int | None = None,
    dtype: str = "bfloat16",
    fake: bool = True,
) -> StepMemory:
    """One optimizer step's peak memory (see the module docstring); `fake=False` runs it for real."""
    if method not in METHODS or objective not in OBJECTIVES:
        raise ValueError(f"method must be one of {METHODS}, objective one of {OBJECTIVES}")
    spec = architecture if isinstance(architecture, VLMArchitecture) else vlm_architecture(architecture)
    rows = 1 if objective == "reward_sft" else 2
    mode = IndexAwareFakeMode() if fake else RealMode()
    real_inputs = _vlm_inputs(spec, rows, tokens, visual_tokens, answer_tokens)
    with mode.active(), moves_in_place():
        model = build_vlm_from_architecture(
            spec,
            decoder_layers=decoder_layers,
            vision_depth=vision_depth,
            dtype=dtype if method == "full" else "float32",  # `_set_frozen_dtypes` gives LoRA's frozen base `dtype`
            finetune="full" if method == "full" else "lora",
            gradient_checkpointing=gradient_checkpointing,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
        )
        quantized = [] if method == "full" else _set_frozen_dtypes(model, method, DTYPES[dtype])
    rope = next(m for m in model.modules() if hasattr(m, "get_rope_index"))
    positions, _ = rope.get_rope_index(  # Qwen's 3-D positions, from ids and grids alone (real tensors)
        real_inputs["input_ids"],
        image_grid_thw=real_inputs["image_grid_thw"],
        mm_token_type_ids=real_inputs["mm_token_type_ids"],
    )
    inputs = {k: mode.index(v) for k, v in real_inputs.items()} | {"position_ids": mode.index(positions)}
    patches = rows * int(real_inputs["image_grid_thw"][0].prod())
    vision = model.config.vision_config
    patch_dim = 3 * vision.temporal_patch_size * vision.patch_size**2
    with mode.active():
        inputs["pixel_values"] = torch.randn(patches, patch_dim, dtype=DTYPES[dtype])
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        reference = _reference(model, method, objective)

        def step(end_backward) -> None:
            _vlm_loss(model, reference, dict(inputs), objective, tokens, answer_tokens).backward()
            end_backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        tracker = _steady_state_tracker(step, model, optimizer, reference)
    if mode.stand_ins:
        raise RuntimeError(f"the step needed data fake tensors do not hold: {dict(mode.stand_ins)}")
    step = _step_memory(tracker)
    if not quantized:
        return step
    saved = sum(2 * n - nf4_bytes(n) for n in quantized)  # the 4-bit weights were counted as bf16
    dequantized = 2 * max(quantized)  # one weight dequantized for its matmul at a time

    def four_bit(phase: PhaseMemory, transient: int) -> PhaseMemory:
        return PhaseMemory(
            weights=phase.weights - saved,
            gradients=phase.gradients,
            optimizer=phase.optimizer,
            activations=phase.activations + transient,
            peak=phase.peak - saved + transient,
        )

    return StepMemory(
        four_bit(step.backward, dequantized), four_bit(step.update, 0), step.activation_peak + dequantized
    )


def _steady_state_tracker(step, model: nn.Module, optimizer, reference) -> tuple[StepMemoryTracker, dict[str, int]]:
    """The second of two steps, tracked: AdamW creates its state in the first step's `optimizer.step()`, and every
    later step holds it through forward and backward. `step(end_backward)` calls `end_backward()` between the
    backward pass and the update; returned: the tracker (its peak now the update's) and the backward's peak."""
    step(lambda: None)
    tracker = StepMemoryTracker()
    tracker.track_external(model, optimizer, *([reference.copy] if hasattr(reference, "copy") else []))
    backward: dict[str, int] = {}
    with tracker:
        step(lambda: backward.update(tracker.end_phase()))
    return tracker, backward


def _reference(model: nn.Module, method: Method, objective: Objective):
    from unified_reward.modules.reference import build_reference

    if objective != "dpo":
        return None
    return build_reference("copy" if method == "full" else "adapter", model)


def _vlm_loss(model, reference, inputs, objective: Objective, tokens: int, answer_tokens: int) -> torch.Tensor:
    from unified_reward.losses.vlm_dpo import completion_logps, preference_loss

    if objective == "reward_sft":  # modules.reward_sft.judge_sft_loss's call, with the positions given
        return model(**inputs, use_cache=False).loss
    labels = inputs.pop("labels")
    keep = torch.arange(tokens - answer_tokens - 1, tokens - 1)  # the positions that predict the answers

    def logps(m: nn.Module) -> torch.Tensor:
        logits = m(**inputs, use_cache=False, logits_to_keep=keep).logits
        return completion_logps(logits, labels[:, -answer_tokens:], torch.ones_like(labels[:, -answer_tokens:]))

    if reference is None:  # precomputed: two numbers per pair, read from a table
        reference_logps = torch.zeros(2)
    else:
        with torch.no_grad(), reference.model() as frozen:
            reference_logps = logps(frozen)
    policy = logps(model)
    return preference_loss(policy[0:1], policy[1:2], reference_logps[0:1], reference_logps[1:2]).loss


def _phase(breakdown: dict[str, int]) -> PhaseMemory:
    return PhaseMemory(
        weights=breakdown.get("Parameter", 0) + breakdown.get("Buffer", 0),
        gradients=breakdown.get("Gradient", 0),
        optimizer=breakdown.get("Optstate", 0),
        activations=breakdown.get("Activation", 0) + breakdown.get("Temp", 0) + breakdown.get("Other", 0),
        peak=breakdown.get("Total", 0),
    )


def _step_memory(tracked: tuple[StepMemoryTracker, dict[str, int]]) -> StepMemory:
    tracker, backward = tracked
    return StepMemory(_phase(backward), _phase(tracker.peak_breakdown()), tracker.activation_peak)


def measure_diffusion_dpo_step(
    *,
    method: Literal["full", "lora"] = "lora",
    gradient_checkpointing: bool = True,
    pairs: int = 1,
    lora_rank: int = 16,
    dtype: str = "bfloat16",
    unet: dict | None = None,
) -> StepMemory:
    """One Diffusion-DPO step of SD1.5's UNet (or `unet`, a UNet2DConditionModel config) on 64x64 latents."""
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model

    from unified_reward.losses.diffusion_dpo import diffusion_dpo_loss, per_sample_error, split_pair_errors
    from unified_reward.models.architectures import SD15_TEXT_TOKENS, SD15_UNET
    from unified_reward.models.diffusion import DEFAULT_LORA_TARGETS
    from unified_reward.modules.reference import build_reference

    config = dict(unet or SD15_UNET)
    mode = IndexAwareFakeMode()
    with mode.active(), moves_in_place():
        model = UNet2DConditionModel(**config)  # float32: peft's adapter moves fail on fake tensors of another dtype
        if gradient_checkpointing:
            model.enable_gradient_checkpointing()
        if method == "lora":  # as models.diffusion.build_denoiser does it
            model.requires_grad_(False)
            lora = LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=list(DEFAULT_LORA_TARGETS))
            model = inject_adapter_in_model(lora, model)
        for parameter in model.parameters():  # the frozen base (or every weight) in `dtype`; LoRA stays float32
            if method == "full" or not parameter.requires_grad:
                parameter.data = parameter.data.to(DTYPES[dtype])
        model.train()
        reference = build_reference("adapter" if method == "lora" else "copy", model)
        size, channels = config["sample_size"], config["in_channels"]
        latents = torch.randn(2 * pairs, channels, size, size, dtype=DTYPES[dtype])
        text = torch.randn(2 * pairs, SD15_TEXT_TOKENS, config["cross_attention_dim"], dtype=DTYPES[dtype])
        timesteps = torch.randint(0, 1000, (2 * pairs,))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        target = torch.randn_like(latents)

        def step(end_backward) -> None:
            errors = per_sample_error(model(latents, timesteps, encoder_hidden_states=text).sample, target)
            with torch.no_grad(), reference.model() as frozen:
                reference_errors = per_sample_error(
                    frozen(latents, timesteps, encoder_hidden_states=text).sample, target
                )
            pair = (*split_pair_errors(errors), *split_pair_errors(reference_errors))
            diffusion_dpo_loss(*pair, beta=5000.0).loss.backward()
            end_backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        tracker = _steady_state_tracker(step, model, optimizer, reference)
    return _step_memory(tracker)
