"""Training throughput with padding-free packing vs padded rows: reward SFT samples/s or VLM DPO pairs/s.

    python benchmarks/bench_train.py [--objective sft|dpo] [--batch 16] [--steps 6] [--repeats 5] [--warmup 1]
        [--pack-tokens N] [--side 56]

sft: both train the shipped tiny base (`checkpoints/tiny_qwen2_vl_base`, the main job's model and image size) with the
main job's targets (rationale, then verdict) on the same batches of the joint mix (all 4 tasks x 2 modes, drawn
uniformly), with AdamW; a step is forward, backward and optimizer step on pre-collated batches (collation runs
in dataloader workers beside training in the main job). Padded: every row as long as the batch's longest sample.
Packed: samples share rows of at most `--pack-tokens` tokens (default: the batch's longest sample), positions
restarting per sample (target >= 1.5).
dpo: `VLMDPOModule` as `benchmarks/bench_vlm_dpo.py` runs it (tiny Qwen2-VL, LoRA r16, adapter reference,
sigmoid loss, AdamW) on image- and video-understanding pairs mixed; padded: our shared layout, one pair per row;
packed: pairs share rows (`pack_tokens`), each pair blind to the others (target >= 1.3).
Alternated (`ab.alternate`); the last line is `ratio=<median packed / median padded>` (higher is better).
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from pathlib import Path

import torch

from ab import alternate, report
from unified_reward.data.media import VideoSampling
from unified_reward.data.schema import MODES
from unified_reward.data.shards import decode_sample, encode_record
from unified_reward.data.tasks import PAPER_TASKS
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.encoding.packing import rope_index_owner
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.modules.reward_sft import judge_sft_loss
from unified_reward.prompts.templates import load_templates
from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import WorldConfig, make_record

BASE = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny_qwen2_vl_base"


def joint_mix(count: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    sampling = VideoSampling(num_frames=8)
    streams = [(t, m) for t in PAPER_TASKS for m in MODES]
    return [
        decode_sample(encode_record(make_record(WorldConfig(), "train", *rng.choice(streams), i)), sampling)
        for i in range(count)
    ]


def train_step(model, optimizer, batch, rope) -> None:
    judge_sft_loss(model, batch, rope).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def dpo_sides(args) -> dict:
    """pairs/s of the shared layout, padded (one pair per row) and packed."""
    from unified_reward.losses.vlm_dpo import preference_loss
    from unified_reward.modules.vlm_dpo import VLMDPOModule

    pixels = args.side * args.side
    processor = build_processor(
        "qwen2_vl",
        min_pixels=pixels,
        max_pixels=pixels,
        image_mean=[0.13, 0.13, 0.12],
        tiny_vocabulary=world_vocabulary(),
    )
    tiny = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
    sampling = VideoSampling(num_frames=8)
    records = [
        decode_sample(encode_record(make_record(WorldConfig(), "train", task, "pair", i)), sampling)
        for i in range(args.batch * args.steps // 2)
        for task in ("image_understanding", "video_understanding")
    ]
    chunks = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
    sides = {}
    for name in ("packed", "padded"):
        torch.manual_seed(0)
        model = build_vlm("qwen2_vl", processor, tiny=tiny, finetune="lora", lora_rank=16, lora_dropout=0.0)
        module = VLMDPOModule(processor, model, reference="adapter")
        if name == "packed":  # rows of at most --pack-tokens, by default the batch's longest pair
            longest = max(int((b["segments"] >= 0).sum(-1).max()) for b in map(module.collate, chunks))
            module.collate.pack_tokens = args.pack_tokens or longest
        batches = [module.collate(c) for c in chunks]
        rows = sum(b["input_ids"].shape[0] for b in batches)
        cells = sum(b["input_ids"].numel() for b in batches)
        used = sum(int((b["segments"] >= 0).sum()) for b in batches)
        print(f"{name}: {rows} rows, {1 - used / cells:.0%} padding")
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def pairs_per_second(module=module, optimizer=optimizer, batches=batches) -> float:
            started = time.perf_counter()
            for batch in batches:
                logps = module.completion_logps(module.model, batch)
                reference = module.reference_logps(batch)
                loss = preference_loss(logps[:, 0], logps[:, 1], reference[:, 0], reference[:, 1], beta=0.1).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            return sum(len(b["records"]) for b in batches) / (time.perf_counter() - started)

        sides[name] = pairs_per_second
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--pack-tokens", type=int, default=None, help="row budget (default: the longest sample)")
    parser.add_argument("--objective", choices=["sft", "dpo"], default="sft")
    parser.add_argument("--side", type=int, default=56, help="dpo: pixels per image side (56 = 4 visual tokens)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.objective == "dpo":
        results = alternate(dpo_sides(args), repeats=args.repeats, warmup=args.warmup)
        report(results, "packed", "padded", unit="pairs/s")
        return
    processor = build_processor("qwen2_vl", str(BASE))
    templates = load_templates(None)
    records = joint_mix(args.batch * args.steps)
    chunks = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
    padded = [JudgeCollator(processor, templates, train_rationale=True)(c) for c in chunks]
    packed = [
        JudgeCollator(processor, templates, train_rationale=True, packing=True, pack_tokens=args.pack_tokens)(c)
        for c in chunks
    ]
    real = sum(int(b["attention_mask"].sum()) for b in padded)
    padded_tokens = sum(b["input_ids"].numel() for b in padded)
    packed_tokens = sum(b["input_ids"].numel() for b in packed)
    print(
        f"joint mix, batch {args.batch}, {args.steps} steps per measurement: {real} tokens; padded rows hold "
        f"{padded_tokens} ({1 - real / padded_tokens:.0%} padding), packed rows {packed_tokens} "
        f"({1 - real / packed_tokens:.0%} padding) in {sum(b['input_ids'].shape[0] for b in packed)} rows instead "
        f"of {sum(b['input_ids'].shape[0] for b in padded)}; CPU threads {torch.get_num_threads()}"
    )
    base = build_vlm("qwen2_vl", processor, pretrained=str(BASE))
    sides = {}
    for name, batches in (("packed", packed), ("padded", padded)):
        model = copy.deepcopy(base).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def samples_per_second(model=model, optimizer=optimizer, batches=batches) -> float:
            rope = rope_index_owner(model)
            started = time.perf_counter()
            for batch in batches:
                train_step(model, optimizer, batch, rope)
            return args.batch * len(batches) / (time.perf_counter() - started)

        sides[name] = samples_per_second
    report(alternate(sides, repeats=args.repeats, warmup=args.warmup), "packed", "padded", unit="samples/s")


if __name__ == "__main__":
    main()
