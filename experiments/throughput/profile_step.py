"""Where the main job's training step goes: reading and decoding, collation, forward, backward, optimizer step,
and the share of padding tokens in the joint mix; padded and packed.

    python experiments/throughput/profile_step.py [--steps 20]

The main job's own config (`experiment=reward_joint`, composed by Hydra): its synthetic world (built if needed)
read through `ShardStream` as the datamodule does, its model (the shipped tiny base), targets (rationale, then
verdict) and batch size; one process (the main job reads in one dataloader worker beside training). Prints one
table.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from pathlib import Path

import hydra
import torch

from unified_reward.data.media import VideoSampling
from unified_reward.data.reading import MixtureStream, ShardStream
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.encoding.packing import rope_index_owner
from unified_reward.modules.reward_sft import judge_sft_loss
from unified_reward.prompts.templates import load_templates

ROOT = Path(__file__).resolve().parents[2]


def main_job_config():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "train.yaml", overrides=["experiment=reward_joint", f"paths.root_dir={ROOT}", "paths.output_dir=."]
        )


def profile(cfg, packing: bool, steps: int) -> dict[str, float]:
    batch_size = cfg.data.batch_size
    world = hydra.utils.instantiate(cfg.data.source)
    world.prepare()
    sampling = VideoSampling(num_frames=8)
    streams = {
        name: ShardStream(urls, name=name, sampling=sampling, shuffle_shards=True, shuffle_buffer=256, repeat=True)
        for name, urls in world.streams("train").items()
    }
    records = iter(MixtureStream(streams, dict.fromkeys(streams, 1.0)))
    processor = hydra.utils.instantiate(cfg.model.processor)
    model = hydra.utils.instantiate(cfg.model.backbone)(processor=processor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rope = rope_index_owner(model)
    collate = JudgeCollator(processor, load_templates(None), train_rationale=True, packing=packing)
    seconds: dict[str, float] = defaultdict(float)
    tokens = {"real": 0, "rows": 0}
    for step in range(steps + 1):  # the first step warms up and is not counted
        clock = time.perf_counter()
        chunk = list(itertools.islice(records, batch_size))
        took = {"read + decode": time.perf_counter() - clock}
        clock = time.perf_counter()
        batch = collate(chunk)
        took["collate"] = time.perf_counter() - clock
        clock = time.perf_counter()
        loss = judge_sft_loss(model, batch, rope)
        took["forward"] = time.perf_counter() - clock
        clock = time.perf_counter()
        loss.backward()
        took["backward"] = time.perf_counter() - clock
        clock = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        took["optimizer"] = time.perf_counter() - clock
        if step:
            for phase, value in took.items():
                seconds[phase] += value
            tokens["real"] += sum(map(sum, batch["sample_lengths"])) if packing else int(batch["attention_mask"].sum())
            tokens["rows"] += batch["input_ids"].numel()
    result = {phase: 1000 * value / steps for phase, value in seconds.items()}
    result["step"] = sum(result.values())
    result["padding share"] = 1 - tokens["real"] / tokens["rows"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = main_job_config()
    results = {"padded": profile(cfg, False, args.steps), "packed": profile(cfg, True, args.steps)}
    print(f"| phase (ms per step of {cfg.data.batch_size}, mean of {args.steps}) | padded | packed |")
    print("|---|---|---|")
    for phase in results["padded"]:
        if phase == "padding share":
            print(f"| {phase} | {results['padded'][phase]:.0%} | {results['packed'][phase]:.0%} |")
        else:
            print(f"| {phase} | {results['padded'][phase]:.1f} | {results['packed'][phase]:.1f} |")


if __name__ == "__main__":
    main()
