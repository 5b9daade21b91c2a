"""Will it fit? The estimated peak memory per device of a training step, for a model config of this project.

    python -m unified_reward.plan model=qwen2_5_vl_7b_qlora
    python -m unified_reward.plan model=qwen2_5_vl_7b strategy=fsdp devices=8 objective=all
    python -m unified_reward.plan model=sd15

Arguments (key=value): `model` (a file of configs/model/, required), `strategy` (`single` or `fsdp`), `devices`,
`objective` (`reward_sft`, `dpo`, `dpo_precomputed` or `all`; SD models: Diffusion-DPO), `tokens` and
`visual_tokens` (one image per sequence), `model.<key>=` overrides of the model config
(`model.backbone.gradient_checkpointing=false`). The step is measured on fake tensors at 1 and 2 decoder layers of
the real width (`unified_reward.sizing`, about a minute), and extrapolated to the full depth; FSDP spreads it as
`sizing.fit.fsdp_per_device` says. These are estimates from CPU measurements: allocator overhead, CUDA context
(~0.5 GiB) and fragmentation come on top.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from unified_reward.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OBJECTIVES = ("reward_sft", "dpo", "dpo_precomputed")


@dataclass(frozen=True)
class PlanRequest:
    model: str
    strategy: str = "single"
    devices: int = 1
    objective: str = "reward_sft"
    tokens: int = 2048
    visual_tokens: int = 512
    overrides: tuple[str, ...] = ()


def parse(arguments: list[str]) -> PlanRequest:
    values: dict[str, str] = {}
    overrides = []
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep:
            raise UserError(f"arguments are key=value, got {argument!r} (see python -m unified_reward.plan --help)")
        if key.startswith("model."):
            overrides.append(argument)
        elif key in ("model", "strategy", "devices", "objective", "tokens", "visual_tokens"):
            values[key] = value
        else:
            raise UserError(f"unknown argument {key!r}: model, strategy, devices, objective, tokens, visual_tokens")
    if "model" not in values:
        raise UserError("say which model: python -m unified_reward.plan model=qwen2_5_vl_7b_qlora")
    if values.get("strategy", "single") not in ("single", "fsdp"):
        raise UserError(f"strategy must be single or fsdp, got {values['strategy']!r}")
    if values.get("objective", "reward_sft") not in (*OBJECTIVES, "all"):
        raise UserError(f"objective must be one of {OBJECTIVES} or all, got {values['objective']!r}")
    devices = int(values.get("devices", 1))
    strategy = values.get("strategy", "fsdp" if devices > 1 else "single")
    if strategy == "single" and devices != 1:
        raise UserError("devices > 1 needs strategy=fsdp (the estimate of DDP is the single-device one)")
    return PlanRequest(
        model=values["model"],
        strategy=strategy,
        devices=devices,
        objective=values.get("objective", "reward_sft"),
        tokens=int(values.get("tokens", 2048)),
        visual_tokens=int(values.get("visual_tokens", 512)),
        overrides=tuple(overrides),
    )


def model_config(name: str, overrides: tuple[str, ...] = ()):
    from hydra import compose, initialize_config_dir

    if not (CONFIGS / "model" / f"{name}.yaml").exists():
        known = ", ".join(sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))
        raise UserError(f"no model config {name!r} in {CONFIGS / 'model'}; known: {known}")
    with initialize_config_dir(config_dir=str(CONFIGS / "model"), version_base="1.3"):
        return compose(config_name=name, overrides=[o.removeprefix("model.") for o in overrides])


def plan_lines(request: PlanRequest) -> list[str]:
    from unified_reward.models.architectures import vlm_architecture
    from unified_reward.sizing.fit import fit_layers, fsdp_per_device
    from unified_reward.sizing.measure import GIB, measure_diffusion_dpo_step

    cfg = model_config(request.model, request.overrides)
    header = f"{request.model}: {request.strategy}, {request.devices} device(s)"
    if "kind" in cfg:  # a denoiser: Diffusion-DPO of SD1.5's UNet
        denoiser = cfg.denoiser
        if denoiser.finetune == "qlora":
            raise UserError("the planner measures Diffusion-DPO with finetune=full or lora (QLoRA needs a GPU)")
        if request.strategy == "fsdp":
            raise UserError("the planner's FSDP estimate covers the VLMs (the denoisers train on one device here)")
        step = measure_diffusion_dpo_step(
            method=denoiser.finetune,
            gradient_checkpointing=bool(denoiser.gradient_checkpointing),
            lora_rank=int(denoiser.lora_rank),
            dtype=str(denoiser.dtype),
        )
        return [header, f"  diffusion_dpo (SD1.5 UNet, one pair of 64x64 latents): {_line(step.peak, step)}"]
    pretrained = cfg.get("pretrained")
    if not pretrained:
        raise UserError(f"model={request.model} is a tiny model from config; plan a released one (model.pretrained)")
    spec = vlm_architecture(str(pretrained))
    backbone = cfg.backbone
    lines = [
        header + f"; {spec.name} ({spec.decoder_layers} decoder layers), {backbone.finetune}, "
        f"gradient checkpointing {'on' if backbone.gradient_checkpointing else 'off'}, "
        f"{request.tokens} tokens with a {request.visual_tokens}-token image per sequence"
    ]
    objectives = OBJECTIVES if request.objective == "all" else (request.objective,)
    for objective in objectives:
        steps = [_measure(spec.name, layers, backbone, objective, request) for layers in (1, 2)]
        fit = fit_layers(*steps)
        estimate = fsdp_per_device(fit, spec.decoder_layers, request.devices).gib()
        full = fit.at(spec.decoder_layers)
        lines.append(
            f"  {objective}: {estimate['total']:.1f} GiB per device = states {estimate['sharded_states']:.1f}"
            f" + gathered {estimate['gathered_weights']:.1f} + activations {estimate['activations']:.1f}"
            f"  (full depth: weights {full.weights / GIB:.1f}, gradients {full.gradients / GIB:.1f},"
            f" optimizer {full.optimizer / GIB:.1f} GiB in all)"
        )
    lines.append(
        "  estimates from fake-tensor measurements on the CPU; allocator overhead and the CUDA context add more"
    )
    return lines


def _measure(architecture: str, layers: int, backbone, objective: str, request: PlanRequest):
    from unified_reward.sizing.measure import measure_vlm_step

    return measure_vlm_step(
        architecture,
        decoder_layers=layers,
        method=str(backbone.finetune),
        objective=objective,
        gradient_checkpointing=bool(backbone.gradient_checkpointing),
        tokens=request.tokens,
        visual_tokens=request.visual_tokens,
        lora_rank=int(backbone.get("lora_rank", 16)),
        lora_alpha=int(backbone.get("lora_alpha", 32)),
        dtype=str(backbone.dtype),
    )


def _line(total: int, step) -> str:
    from unified_reward.sizing.measure import GIB

    g = step.gib()
    return (
        f"{total / GIB:.1f} GiB = weights {g['weights']} + gradients {g['gradients']} + optimizer "
        f"{g['optimizer']} + activations {g['activations']} (activation peak {g['activation_peak']})"
    )


def main(arguments: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    if not arguments or arguments[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        for line in plan_lines(parse(arguments)):
            print(line, flush=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
