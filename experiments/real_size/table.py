"""The README's memory tables from measurements.jsonl (made by measure.py).

python experiments/real_size/table.py
"""

from __future__ import annotations

import json
from pathlib import Path

from unified_reward.models.architectures import vlm_architecture
from unified_reward.sizing.fit import fit_layers, fsdp_per_device
from unified_reward.sizing.measure import GIB, StepMemory

ROWS = [json.loads(line) for line in Path(__file__).with_name("measurements.jsonl").read_text().splitlines()]


def fit_of(architecture: str, method: str, objective: str, checkpointing: bool = True):
    depths = {
        r["decoder_layers"]: StepMemory.from_dict(r["bytes"])
        for r in ROWS
        if r["kind"] == "vlm"
        and (r["architecture"], r["method"], r["objective"], r["gradient_checkpointing"])
        == (architecture, method, objective, checkpointing)
    }
    return (fit_layers(depths[1], depths[2]), depths) if 1 in depths and 2 in depths else (None, depths)


def main() -> None:
    print("| model | method | 1 GPU: peak GiB (weights + grads + optimizer + activations) | 8 GPUs FSDP, per GPU |")
    print("|---|---|---|---|")
    for architecture in ("qwen2_vl_2b", "qwen2_5_vl_3b", "qwen2_5_vl_7b"):
        layers = vlm_architecture(architecture).decoder_layers
        for method in ("full", "lora", "qlora"):
            fit, _ = fit_of(architecture, method, "reward_sft")
            if fit is None:
                continue
            step = fit.at(layers)
            g = step.gib()
            fsdp = fsdp_per_device(fit, layers, 8)
            print(
                f"| {architecture} | {method} | {g['peak']:.1f} ({g['weights']:.1f} + {g['gradients']:.1f} + "
                f"{g['optimizer']:.1f} + {g['activations']:.1f}) | {fsdp.total / GIB:.1f} |"
            )
    print()
    print("| model | gradient checkpointing | full | lora | qlora |")
    print("|---|---|---|---|---|")
    for architecture in ("qwen2_vl_2b", "qwen2_5_vl_3b", "qwen2_5_vl_7b"):
        layers = vlm_architecture(architecture).decoder_layers
        for checkpointing in (True, False):
            cells = []
            for method in ("full", "lora", "qlora"):
                fit, _ = fit_of(architecture, method, "reward_sft", checkpointing)
                cells.append(f"{fit.at(layers).peak / GIB:.1f}" if fit else "not measured")
            print(f"| {architecture} | {'on' if checkpointing else 'off'} | " + " | ".join(cells) + " |")
    print()
    print("| qwen2_5_vl_7b, objective | full | lora | qlora |")
    print("|---|---|---|---|")
    for objective in ("reward_sft", "dpo", "dpo_precomputed"):
        cells = []
        for method in ("full", "lora", "qlora"):
            fit, _ = fit_of("qwen2_5_vl_7b", method, objective)
            cells.append(f"{fit.at(28).peak / GIB:.1f}" if fit else "not measured")
        print(f"| {objective} | " + " | ".join(cells) + " |")
    print()
    for r in ROWS:
        if r["kind"] == "diffusion":
            print(f"SD1.5 Diffusion-DPO, {r['method']}: peak {StepMemory.from_dict(r['bytes']).peak / GIB:.1f} GiB")
    for r in ROWS:
        if r["kind"] == "vlm" and r["decoder_layers"] > 4:
            fit, _ = fit_of(r["architecture"], r["method"], r["objective"], r["gradient_checkpointing"])
            predicted = fit.at(r["decoder_layers"]).peak
            print(
                f"full depth measured: {r['architecture']} {r['method']} {r['decoder_layers']} layers: "
                f"{StepMemory.from_dict(r['bytes']).peak / GIB:.2f} GiB measured, "
                f"{predicted / GIB:.2f} GiB from 1 and 2 layers"
            )
    worst = 0.0
    for r in ROWS:
        if r["kind"] == "vlm" and r["decoder_layers"] == 4:
            fit, _ = fit_of(r["architecture"], r["method"], r["objective"], r["gradient_checkpointing"])
            worst = max(worst, abs(fit.at(4).peak / StepMemory.from_dict(r["bytes"]).peak - 1))
    print(f"4-layer peaks predicted from 1 and 2 layers: worst error {100 * worst:.2f}%")


if __name__ == "__main__":
    main()
