"""The real-size check for a GPU machine (scripts/gpu_check.sh): measured peak memory and tokens/s of reward-SFT
steps of random-init judges at full size, each beside the planner's estimate.

    python -m unified_reward.sizing.gpu_check             # on one large GPU, under 5 minutes
    python -m unified_reward.sizing.gpu_check --dry-run   # the same code on the CPU at 1 decoder layer, 64 tokens

Cases: QLoRA (NF4, LoRA rank 64) of a Qwen2.5-VL-7B-sized judge, and bf16 LoRA of the 3B size; one image,
2,048 tokens (512 of them visual), gradient checkpointing, AdamW, 3 steps (the first warms up). The target of the
7B QLoRA case is a peak at or under 16 GiB.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import torch

from unified_reward.models.architectures import vlm_architecture
from unified_reward.models.builders import build_vlm_from_architecture
from unified_reward.modules.reward_sft import judge_sft_loss
from unified_reward.sizing.fit import fit_layers
from unified_reward.sizing.measure import GIB, _vlm_inputs, measure_vlm_step


@dataclass(frozen=True)
class Case:
    name: str
    architecture: str
    finetune: str
    lora_rank: int
    lora_alpha: int


CASES = (
    Case("qwen2_5_vl_7b QLoRA", "qwen2_5_vl_7b", "qlora", 64, 128),
    Case("qwen2_5_vl_3b bf16 LoRA", "qwen2_5_vl_3b", "lora", 64, 128),
)


def run_case(case: Case, *, decoder_layers: int | None, tokens: int, visual_tokens: int, steps: int, device: str):
    spec = vlm_architecture(case.architecture)
    layers = decoder_layers or spec.decoder_layers
    torch.manual_seed(0)
    model = build_vlm_from_architecture(
        case.architecture,
        decoder_layers=layers,
        vision_depth=1 if decoder_layers else None,
        dtype="bfloat16" if device == "cuda" else "float32",
        finetune=case.finetune,
        quant_storage=None,
        gradient_checkpointing=True,
        lora_rank=case.lora_rank,
        lora_alpha=case.lora_alpha,
    )
    if case.finetune != "qlora":
        model = model.to(device)
    batch = _vlm_inputs(spec, 1, tokens, visual_tokens, answer_tokens=min(256, tokens // 8))
    grid = batch["image_grid_thw"][0]
    batch["pixel_values"] = torch.randn(int(grid.prod()), 3 * 2 * 14 * 14)
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = judge_sft_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    steady = seconds[1:] or seconds
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    estimate_options = dict(method=case.finetune, tokens=tokens, visual_tokens=visual_tokens)
    estimate_options |= dict(lora_rank=case.lora_rank, lora_alpha=case.lora_alpha)
    if decoder_layers:  # the dry run's own small step, measured on fake tensors directly
        estimate = measure_vlm_step(spec, decoder_layers=layers, vision_depth=1, dtype="float32", **estimate_options)
    else:
        fit = fit_layers(*(measure_vlm_step(spec, decoder_layers=n, **estimate_options) for n in (1, 2)))
        estimate = fit.at(layers)
    return {
        "case": case.name,
        "decoder_layers": layers,
        "loss": round(loss.item(), 4),
        "finite": bool(torch.isfinite(loss).item()),
        "peak_gib": None if peak is None else round(peak / GIB, 2),
        "estimate_gib": round(estimate.peak / GIB, 2),
        "tokens_per_s": round(tokens / (sum(steady) / len(steady)), 1),
        "target_peak_gib": 16.0 if case.finetune == "qlora" else None,
    }


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, 1 decoder layer, 1 vision block, 64 tokens")
    args = parser.parse_args(arguments)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no GPU here: use --dry-run to check the script on the CPU")
    device = "cpu" if args.dry_run else "cuda"
    shape = dict(decoder_layers=1, tokens=64, visual_tokens=16, steps=2) if args.dry_run else {}
    shape = {"decoder_layers": None, "tokens": 2048, "visual_tokens": 512, "steps": 3} | shape
    for case in CASES:
        result = run_case(case, device=device, **shape)
        print(json.dumps(result), flush=True)
        torch.cuda.empty_cache() if device == "cuda" else None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
