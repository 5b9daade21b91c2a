"""Peak memory of one training step at real width (fake tensors, this CPU), appended to measurements.jsonl.

python experiments/real_size/measure.py            # every row not yet in the file; about 45 min on 2 cores
python experiments/real_size/table.py               # the tables of README.md from the file
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from unified_reward.sizing.measure import measure_diffusion_dpo_step, measure_vlm_step

OUT = Path(__file__).with_name("measurements.jsonl")
ARCHITECTURES = ("qwen2_vl_2b", "qwen2_5_vl_3b", "qwen2_5_vl_7b")


def rows():
    def vlm(architecture, method, objective, checkpointing, layers):
        return dict(
            kind="vlm",
            architecture=architecture,
            method=method,
            objective=objective,
            gradient_checkpointing=checkpointing,
            decoder_layers=layers,
        )

    for architecture in ARCHITECTURES:
        for method in ("full", "lora", "qlora"):
            for layers in (1, 2, 4):
                yield vlm(architecture, method, "reward_sft", True, layers)
    for objective in ("dpo", "dpo_precomputed"):
        for method in ("full", "lora", "qlora"):
            for layers in (1, 2):
                yield vlm("qwen2_5_vl_7b", method, objective, True, layers)
    for method in ("lora", "full"):
        yield dict(
            kind="diffusion",
            architecture="sd15_unet",
            method=method,
            objective="diffusion_dpo",
            gradient_checkpointing=True,
        )
    # full depth measured directly, to check the extrapolation from 1 and 2 layers
    yield vlm("qwen2_5_vl_7b", "lora", "reward_sft", True, 28)
    yield vlm("qwen2_5_vl_3b", "qlora", "reward_sft", True, 36)
    for architecture in ARCHITECTURES:
        for method in ("full", "lora", "qlora"):
            for layers in (1, 2):
                yield vlm(architecture, method, "reward_sft", False, layers)


def key(row: dict) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in ("bytes", "seconds")}, sort_keys=True)


def main() -> None:
    done = {key(json.loads(line)) for line in OUT.read_text().splitlines()} if OUT.exists() else set()
    for row in rows():
        if key(row) in done:
            continue
        start = time.time()
        options = {k: row[k] for k in ("method", "gradient_checkpointing")}
        if row["kind"] == "diffusion":
            step = measure_diffusion_dpo_step(**options)
        else:
            step = measure_vlm_step(
                row["architecture"], decoder_layers=row["decoder_layers"], objective=row["objective"], **options
            )
        row |= {"bytes": step.to_dict(), "seconds": round(time.time() - start, 1)}
        with OUT.open("a") as file:
            file.write(json.dumps(row) + "\n")
        print(
            row["architecture"],
            row["method"],
            row["objective"],
            row.get("decoder_layers"),
            row["gradient_checkpointing"],
            step.gib(),
            row["seconds"],
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
