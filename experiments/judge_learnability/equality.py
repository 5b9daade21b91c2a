"""Does the tiny language model learn to tell whether two words are the same, alone, in a mixture, after a lead?

    python experiments/judge_learnability/equality.py --skill compare_words --batch 32 --steps 600
    python experiments/judge_learnability/equality.py --skill mix --batch 16 --steps 1500
    python experiments/judge_learnability/equality.py --skill mix --first-steps 400 --batch 16 --steps 1500

Trains the tiny Qwen2-VL of `model=qwen2_vl_tiny` (random weights, text only) with a constant-lr AdamW loop on
the base's text skills (`unified_reward.synthetic.skills.make_text_example`): one skill, or `mix` (extract,
compare_words, count_yes, compare_texts, compare_numbers), after `--first-steps` of `--first-skill` alone.
Every 100 steps it prints, on 256 held-out examples (compare_texts for `mix`, else the skill itself), the
teacher-forced accuracy of the `yes` and of the `no` tokens of the answers: "always yes" reads 1.00 / 0.00.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from unified_reward.encoding.chat import encode_chat, pad_batch
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.modules.reward_sft import MODEL_INPUTS
from unified_reward.synthetic.skills import make_text_example
from unified_reward.synthetic.vocabulary import world_vocabulary

MIX = {"extract": 0.15, "compare_words": 0.3, "count_yes": 0.1, "compare_texts": 0.35, "compare_numbers": 0.1}
TINY = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
TINY_VISION = {"vision_embed_dim": 64, "vision_depth": 1, "vision_heads": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skill", default="compare_words", help="a text skill, or mix")
    parser.add_argument("--first-skill", default="compare_words")
    parser.add_argument("--first-steps", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    torch.manual_seed(0)
    processor = build_processor("qwen2_vl", None, min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm("qwen2_vl", processor, tiny=TINY | TINY_VISION)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    kinds = ("image", "video")

    def draw(rng: np.random.Generator, step: int):
        if step < args.first_steps:
            skill = args.first_skill
        elif args.skill == "mix":
            skill = list(MIX)[int(rng.choice(len(MIX), p=list(MIX.values())))]
        else:
            skill = args.skill
        return make_text_example(rng, skill, kinds[int(rng.integers(2))])

    def batch_of(examples):
        chats = [encode_chat(processor, [{"type": "text", "text": e.question}], e.answer) for e in examples]
        return pad_batch(chats, processor)

    held_rng = np.random.default_rng(99)
    held_skill = "compare_texts" if args.skill == "mix" else args.skill
    held = batch_of([make_text_example(held_rng, held_skill, kinds[i % 2]) for i in range(256)])
    yes, no = (processor.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" yes", " no"))

    @torch.no_grad()
    def yes_no_accuracy() -> tuple[float, float]:
        model.eval()
        logits = model(**{k: held[k] for k in MODEL_INPUTS if k in held and k != "labels"}).logits[:, :-1]
        model.train()
        labels, predicted = held["labels"][:, 1:], logits.argmax(-1)
        return tuple(float((predicted[labels == w] == w).float().mean()) for w in (yes, no))

    rng, start = np.random.default_rng(0), time.time()
    for step in range(args.steps + 1):
        if step % 100 == 0:
            print(f"{step} yes-acc %.2f no-acc %.2f {time.time() - start:.0f}s" % yes_no_accuracy(), flush=True)
        batch = batch_of([draw(rng, step) for _ in range(args.batch)])
        loss = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    main()
