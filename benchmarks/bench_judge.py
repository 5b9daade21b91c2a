"""Judgments/s of the judge engine, two figures, each ours against a baseline in one run (`ab.alternate`):

    python benchmarks/bench_judge.py [--sets 2] [--candidates 10] [--tokens 4 64] [--tasks ...] [--repeats 5]

1. One forward vs generate-then-parse (the official method): the same pair queries read as P(first / second / tie)
   in one forward, or answered greedily (as many tokens as the longest verdict sentence) and parsed. Batch 8.
2. Shared-prefix reuse vs plain batching, on the filter itself (`PreferenceFilter.predict_step`): candidate sets of
   N candidates per task (N/2 pair and N point judgments each), with `Judge(prefix_reuse=True)` or `False`, at each
   `--tokens` count of visual tokens per image (per video frame pair). The last line is the ratio at the last count
   (target >= 2 at 64 tokens).

All sides use the same tiny Qwen2-VL (hidden 128, 4 layers), the same world records and the same batch size.
"""

from __future__ import annotations

import argparse
import time

import torch

from ab import alternate, report
from unified_reward.data.media import VideoSampling
from unified_reward.data.schema import CandidateSet
from unified_reward.data.shards import decode_sample, encode_record
from unified_reward.data.tasks import PAPER_TASKS, TASKS
from unified_reward.filtering.filter import PreferenceFilter
from unified_reward.judging.generative import Judge
from unified_reward.judging.queries import JudgeQuery
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import WorldConfig, make_record

TINY = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
PIXELS_PER_TOKEN = 4 * 14 * 14  # Qwen2-VL: 14-px patches, 2x2 merged into one token


def tiny_judge(tokens_per_image: int, batch_size: int, *, prefix_reuse: bool) -> Judge:
    torch.manual_seed(0)
    pixels = tokens_per_image * PIXELS_PER_TOKEN
    processor = build_processor("qwen2_vl", min_pixels=pixels, max_pixels=pixels, tiny_vocabulary=world_vocabulary())
    model = build_vlm("qwen2_vl", processor, tiny=TINY).eval()
    return Judge(model, processor, batch_size=batch_size, prefix_reuse=prefix_reuse)


def decoded(task: str, index: int, sampling: VideoSampling):
    return decode_sample(encode_record(make_record(WorldConfig(), "test", task, "pair", index)), sampling)


def candidate_sets(tasks: list[str], sets: int, candidates: int) -> list[CandidateSet]:
    """Per task, `sets` candidate sets of the world: one record's prompt (and context) with the candidates of
    `candidates / 2` of its pair records (answer texts, or images / videos)."""
    sampling = VideoSampling(num_frames=8)
    made = []
    for task in tasks:
        for s in range(sets):
            records = [decoded(task, s * candidates + k, sampling) for k in range(candidates // 2)]
            made.append(
                CandidateSet(
                    id=f"{task}-{s}",
                    task=task,
                    prompt=records[0].prompt,
                    candidates=tuple(c for r in records for c in r.candidates),
                    source="bench",
                    context=records[0].context,
                )
            )
    return made


def one_forward_vs_generate(batch: int, batches: int, repeats: int, warmup: int) -> None:
    judge = tiny_judge(4, batch, prefix_reuse=False)
    count = batch * batches
    sampling = VideoSampling(num_frames=8)
    queries = [JudgeQuery.of(decoded(PAPER_TASKS[i % 4], i, sampling)) for i in range(count)]
    tokenizer = judge.processor.tokenizer
    answer_tokens = max(
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

    print(f"[1] {count} pair judgments, batch {batch}, {answer_tokens} generated tokens per answer")
    results = alternate({"one forward": ours, "generate + parse": baseline}, repeats=repeats, warmup=warmup)
    report(results, "one forward", "generate + parse", unit="judgments/s")


def prefix_reuse_vs_plain(tokens: int, sets: list[CandidateSet], batch: int, repeats: int, warmup: int) -> None:
    filters = {
        name: PreferenceFilter(tiny_judge(tokens, batch, prefix_reuse=reuse))
        for name, reuse in (("prefix reuse", True), ("plain batches", False))
    }
    judgments = sum(len(s.candidates) + len(s.candidates) // 2 for s in sets)

    def measure(name: str):
        def run() -> float:
            started = time.perf_counter()
            outcomes = filters[name].predict_step(sets, 0)
            assert len(outcomes) == len(sets)
            return judgments / (time.perf_counter() - started)

        return run

    tasks = sorted({s.task for s in sets})
    print(
        f"[2] the filter on {len(sets)} candidate sets ({judgments} judgments; {', '.join(tasks)}), "
        f"{tokens} visual tokens per image, batch {batch}"
    )
    results = alternate({name: measure(name) for name in filters}, repeats=repeats, warmup=warmup)
    report(results, "prefix reuse", "plain batches", unit="judgments/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6, help="pair batches of figure 1")
    parser.add_argument("--sets", type=int, default=2, help="candidate sets per task (figure 2)")
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4, 64], help="visual tokens per image")
    parser.add_argument("--tasks", nargs="+", default=list(PAPER_TASKS), choices=TASKS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip-generate", action="store_true", help="figure 2 only")
    args = parser.parse_args()
    if not args.skip_generate:
        one_forward_vs_generate(args.batch, args.batches, args.repeats, args.warmup)
    sets = candidate_sets(args.tasks, args.sets, args.candidates)
    for tokens in args.tokens:
        prefix_reuse_vs_plain(tokens, sets, args.batch, args.repeats, args.warmup)


if __name__ == "__main__":
    main()
