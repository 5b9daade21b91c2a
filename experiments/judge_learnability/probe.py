"""What the tiny judge learns, step by step: teacher-forced accuracy of the tokens that carry each skill.

    python experiments/judge_learnability/probe.py --streams image_understanding:point --rationale --steps 600
    python experiments/judge_learnability/probe.py --streams image_understanding:pair --text-observation --steps 2000
    python experiments/judge_learnability/probe.py --vision-only --steps 300

Trains the judge's real model (tiny Qwen2-VL of `model=qwen2_vl_tiny`) with the real collator on synthetic-world
records of the given streams, with a plain AdamW loop (warm-up 5%, cosine to 5%), and every `--eval-every`
steps prints, on 100 validation records per stream, the accuracy of the argmax next token at:
  - `<mode>:<attribute>`: the first token of each attribute word of the rationale (`--rationale`: the judge
    writes the world's reasoning, "The image shows two red circles on the left." then each answer's checks,
    before its verdict);
  - `<mode>:decision`: the verdict's deciding token (the answer number of a pair, the score's first digit);
  - `q:<attributes>`: the decision of understanding pairs by the attributes the question asks about.
`--text-observation` writes the observation into the prompt as text (the comparison alone, no perception);
`--hint` writes the answer number into the prompt (a control: can the loop learn anything at all);
`--pretrain-vision N` first trains the vision tower for N steps with linear heads on the scene's attributes;
`--vision-only` trains only that (vision tower + heads) and reports each attribute's accuracy;
`--hidden-size` / `--layers` change the language model's width and depth (default: the tiny judge's 128 x 4).
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from PIL import Image

from unified_reward.data.media import VideoSampling
from unified_reward.data.shards import decode_sample, encode_record
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.modules.optimization import adamw, configure_optimization, vision_scaled_groups, warmup_cosine
from unified_reward.modules.reward_sft import MODEL_INPUTS
from unified_reward.prompts.templates import load_templates
from unified_reward.synthetic.render import render_image
from unified_reward.synthetic.scene import COLORS, COUNT_WORDS, MOTIONS, POSITIONS, SHAPES, random_scene, values_of
from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import QUESTIONS, WorldConfig, make_record

TINY = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
WORDS = {
    "count": set(COUNT_WORDS.values()),
    "color": set(COLORS),
    "shape": set(SHAPES) | {s + "s" for s in SHAPES},
    "where": set(POSITIONS) | set(MOTIONS),
}
ATTRIBUTE_CLASSES = {a: values_of(a) for a in ("color", "shape", "count", "position")}
SAMPLING = VideoSampling(num_frames=8)


def token_roles(tokenizer, answer: str) -> list[str | None]:
    """Per answer token (end token included): the attribute whose word it starts, `decision`, or None."""
    offsets = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False, return_offsets_mapping=True)
    verdict_start = answer.rfind("\n") + 1  # 0 without a rationale
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"[a-z]+", answer[:verdict_start])]
    roles: list[str | None] = []
    started: set[int] = set()
    decided = False
    for start, end in offsets["offset_mapping"]:
        role = None
        piece = answer[start:end].strip() if end <= len(answer) else ""
        if start >= verdict_start and not decided and (piece.isdigit() or piece == "Both"):
            role, decided = "decision", True
        for word_start, word_end, word in words:
            if start < word_end and end > word_start and word_start not in started:  # a token may hold the space
                role = next((k for k, ws in WORDS.items() if word in ws), None)
                started.add(word_start)
        roles.append(role)
    return roles


def asked_attributes(prompt: str) -> str:
    asked = next(k for k, texts in QUESTIONS.items() if any(prompt.endswith(t) for t in texts))
    return "+".join(a[:3] for a in asked)


@torch.no_grad()
def evaluate(model, collate, records) -> dict[str, float]:
    model.eval()
    hits: dict[str, list[float]] = {}
    for start in range(0, len(records), 32):
        chunk = records[start : start + 32]
        batch = collate(chunk)
        logits = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch and k != "labels"}, use_cache=False).logits
        predicted, labels = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        for row, record in enumerate(chunk):
            positions = (labels[row] != -100).nonzero().flatten()
            roles = token_roles(collate.processor.tokenizer, collate.answer(record))
            for role, position in zip(roles, positions.tolist(), strict=True):
                if role is None:
                    continue
                hit = float(predicted[row, position] == labels[row, position])
                hits.setdefault(f"{record.mode}:{role}", []).append(hit)
                if role == "decision" and record.mode == "pair" and record.task.endswith("understanding"):
                    hits.setdefault("q:" + asked_attributes(record.prompt), []).append(hit)
    model.train()
    return {k: round(float(np.mean(v)), 3) for k, v in sorted(hits.items())}


def scene_batch(processor, rng, size: int):
    scenes = [random_scene("image", rng) for _ in range(size)]
    images = [Image.fromarray(render_image(s, rng)) for s in scenes]
    inputs = processor.image_processor(images=images, return_tensors="pt")
    targets = {a: torch.tensor([v.index(getattr(s, a)) for s in scenes]) for a, v in ATTRIBUTE_CLASSES.items()}
    return inputs["pixel_values"], inputs["image_grid_thw"], targets


def train_vision(model, processor, steps: int, hidden: int, report_every: int = 0) -> None:
    """The vision tower (with its merger) and one linear head per attribute over its concatenated tokens."""
    tower, rng = model.model.visual, np.random.default_rng(1)
    pixels, grid, _ = scene_batch(processor, rng, 2)
    tokens = tower(pixels, grid_thw=grid).pooler_output.shape[0] // 2
    heads = torch.nn.ModuleDict({a: torch.nn.Linear(hidden * tokens, len(v)) for a, v in ATTRIBUTE_CLASSES.items()})
    optimizer = torch.optim.AdamW([*tower.parameters(), *heads.parameters()], lr=1e-3)

    def features(pixels, grid):
        return tower(pixels, grid_thw=grid).pooler_output.reshape(-1, hidden * tokens)

    for step in range(steps + 1):
        if report_every and step % report_every == 0:
            with torch.no_grad():
                pixels, grid, targets = scene_batch(processor, np.random.default_rng(99), 256)
                out = features(pixels, grid)
                accuracy = {a: round(float((heads[a](out).argmax(-1) == targets[a]).float().mean()), 3) for a in heads}
            print(f"vision step {step}: {tokens} tokens per image, accuracy {accuracy}", flush=True)
        if step == steps:
            break
        pixels, grid, targets = scene_batch(processor, rng, 32)
        out = features(pixels, grid)
        loss = sum(torch.nn.functional.cross_entropy(heads[a](out), targets[a]) for a in heads)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="image_understanding:point", help="task:mode,task:mode,...")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--vision-lr-scale", type=float, default=1.0)
    parser.add_argument("--pixels", type=int, default=3136, help="pixels per image after resizing (3136: 4 tokens)")
    parser.add_argument("--train-records", type=int, default=1500, help="per stream")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--rationale", action="store_true")
    parser.add_argument("--text-observation", action="store_true")
    parser.add_argument("--hint", action="store_true")
    parser.add_argument("--pretrain-vision", type=int, default=0)
    parser.add_argument("--vision-only", action="store_true")
    parser.add_argument("--hidden-size", type=int, default=TINY["hidden_size"])
    parser.add_argument("--layers", type=int, default=TINY["num_hidden_layers"])
    args = parser.parse_args()
    size = TINY | {"hidden_size": args.hidden_size, "num_hidden_layers": args.layers}

    torch.manual_seed(0)
    processor = build_processor(
        "qwen2_vl",
        min_pixels=args.pixels,
        max_pixels=args.pixels,
        image_mean=[0.130, 0.129, 0.122],
        tiny_vocabulary=world_vocabulary(),
    )
    model = build_vlm("qwen2_vl", processor, tiny=size)
    if args.vision_only or args.pretrain_vision:
        steps = args.steps if args.vision_only else args.pretrain_vision
        train_vision(model, processor, steps, size["hidden_size"], args.eval_every if args.vision_only else steps)
        if args.vision_only:
            return

    def prepared(record):
        record = decode_sample(encode_record(record), SAMPLING)  # as the datamodule reads it
        if args.text_observation:
            # only what the media show (the rationale's first lines), never its checks or tallies
            seen = " ".join(line for line in record.rationale.split("\n") if " shows " in line)
            record = replace(record, prompt=f"{seen} {record.prompt}")
        if args.hint:
            record = replace(record, prompt=f"hint {1 if record.label == 'first' else 2}. {record.prompt}")
        return record

    world = WorldConfig()
    streams = [tuple(s.split(":")) for s in args.streams.split(",")]
    train = [prepared(make_record(world, "train", t, m, i)) for t, m in streams for i in range(args.train_records)]
    val = [prepared(make_record(world, "val", t, m, i)) for t, m in streams for i in range(100)]
    collate = JudgeCollator(processor, load_templates(None), train_rationale=args.rationale)
    configured = configure_optimization(
        vision_scaled_groups(model, args.vision_lr_scale),
        adamw(args.lr, weight_decay=0.01),
        partial(warmup_cosine, warmup_ratio=0.05, min_lr_rate=0.05),
        args.steps,
    )
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    rng, started = np.random.default_rng(0), time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.eval_every == 0 or step == args.steps:
            train_decision = evaluate(model, collate, train[:: max(1, len(train) // 200)])
            decisions = {k: v for k, v in train_decision.items() if k.endswith(":decision")}
            elapsed = round(time.perf_counter() - started)
            print(f"step {step} ({elapsed} s): val {evaluate(model, collate, val)} train {decisions}", flush=True)
        if step == args.steps:
            break
        batch = collate([train[i] for i in rng.choice(len(train), args.batch, replace=False)])
        loss = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()


if __name__ == "__main__":
    main()
