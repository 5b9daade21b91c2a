"""Judgments/s of the one-forward judge vs the official method (generate the answer, then parse it).

    python benchmarks/bench_judge.py [--batch 8] [--batches 6] [--repeats 5] [--warmup 1] [--answer-tokens N]

Both sides use the same tiny Qwen2-VL, the same pair records (all four tasks, images and 8-frame
videos), the same batch size and the same prompt encoding (`scoring.Judge`). The baseline generates
greedily as many tokens as the longest verdict sentence has (what a trained judge writes before its
end token) and parses the text; ours reads P(first / second / tie) from one forward pass.
The two are alternated (`ab.alternate`); the last line is `ratio=<median ours / median baseline>` (higher is
better; target >= 5 at batch 8).
"""

from __future__ import annotations

import argparse
import time

import torch

from ab import alternate, report
from unified_reward.data.media import VideoSampling
from unified_reward.data.schema import TASKS
from unified_reward.data.shards import decode_sample, encode_record
from unified_reward.data.synthetic.world import WorldConfig, make_record
from unified_reward.models.builders import build_processor, build_vlm
from unified_reward.scoring import Judge, JudgeQuery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--answer-tokens",
        type=int,
        default=None,
        help="tokens the baseline generates (default: the longest verdict sentence, end token included)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136)
    tiny = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
    model = build_vlm("qwen2_vl", processor, tiny=tiny).eval()
    judge = Judge(model, processor, batch_size=args.batch)
    sampling = VideoSampling(num_frames=8)
    count = args.batch * args.batches
    queries = [
        JudgeQuery.of(
            decode_sample(encode_record(make_record(WorldConfig(), "test", TASKS[i % 4], "pair", i)), sampling)
        )
        for i in range(count)
    ]
    tokenizer = processor.tokenizer
    answer_tokens = args.answer_tokens or max(
        len(tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"])
        for template in judge.templates.values()
        for answer in template.pair_answers.values()
    )

    def ours() -> float:
        started = time.perf_counter()
        assert judge.pair_probabilities(queries).shape == (count, 3)
        return count / (time.perf_counter() - started)

    def baseline() -> float:
        started = time.perf_counter()
        assert len(judge.generate_and_parse(queries, max_new_tokens=answer_tokens)) == count
        return count / (time.perf_counter() - started)

    print(f"{count} pair judgments, batch {args.batch}, tiny Qwen2-VL, {answer_tokens} generated tokens per answer")
    results = alternate(
        {"ours (one forward)": ours, "baseline (generate + parse)": baseline}, repeats=args.repeats, warmup=args.warmup
    )
    report(results, "ours (one forward)", "baseline (generate + parse)", unit="judgments/s")


if __name__ == "__main__":
    main()
