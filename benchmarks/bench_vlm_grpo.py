"""Training samples/s and peak memory of `VLMGRPOModule` vs TRL 1.16.0's `GRPOTrainer`, in one run.

    python benchmarks/bench_vlm_grpo.py [--prompts 8] [--group 4] [--max-new-tokens 16] [--steps 8] [--warmup 2]
        [--repeats 5] [--side 56]

Target: ratio >= 1.3 (ours over TRL, median samples/s), with no more peak memory than TRL.

Both train the same tiny Qwen2-VL (LoRA r16, same initial weights; reference = adapter disabled; AdamW, constant
learning rate, fp32, no gradient checkpointing) with online GRPO on the same synthetic-world image questions in the
same order (`--prompts` questions a step, `--group` answers sampled for each at temperature 1, at most
`--max-new-tokens` tokens; beta 0.04, epsilon 0.2, the per-answer "grpo" loss, group-std scaled advantages; one
optimisation step per generation batch), each inside its own trainer (Lightning; transformers' Trainer). The reward
is the synthetic world's oracle: ours through its judge interface (`OracleJudge`, `reward="score"`: 1 + 4 x the
fraction of asked attributes stated correctly), TRL's through a plain reward function returning that fraction;
group-normalised advantages are the same up to the 1e-4 in the std. TRL's prompts are encoded by a small
`ProcessorMixin` adapter that calls our own encoding (`render_policy_prompt` + `encode_chat`), so both sides see
the same prompt tokens and pixels; the rest (sampling, padding, reference pass, loss, step) is TRL's.
A "sample" is one sampled answer: a step trains prompts x group samples.

Work that differs by design: TRL repeats each question G times and encodes its image and prompt once per answer
(for generation and again for the forward passes); ours encodes them once per group (generation samples G
continuations of one prompt; the forward passes put `prompt | answer 1 | ... | answer G` in one row). TRL also
computes each answer token's entropy (a logged metric). Answers are sampled from different random streams, so their
lengths (hence the tokens trained on) may differ a little between the sides; at the tiny model's start nearly all run
to `--max-new-tokens`. Ours samples at most 64 // G prompts per `generate` call (`generate_batch_size`), TRL all
prompts x G rows at once.

Each run is a fresh process; the two are alternated (ours, TRL, ours, ...) over `--repeats` rounds
(`ab.alternate`). Speed of a run: median step time (sampling, reward, reference pass, forward, backward, optimiser)
after `--warmup` steps; of a side: the median over its runs.
Memory: on CPU the peak resident memory during training over the resident memory just before it (sampled every
2 ms); on GPU `max_memory_allocated` over the memory allocated before training.
The last line is `ratio=<ours/baseline>` of median samples/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

import torch

from ab import alternate, report
from bench_vlm_dpo import TINY, MemoryWatch, _median, _policy

TASK = "image_understanding"
BETA = 0.04


def _records(count: int):
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import decode_sample, encode_record
    from unified_reward.synthetic.world import WorldConfig, make_record

    sampling = VideoSampling(num_frames=8)
    return [
        decode_sample(encode_record(make_record(WorldConfig(), "train", TASK, "pair", i)), sampling)
        for i in range(count)
    ]


def run_ours(args) -> dict:
    import lightning as L
    from torch.utils.data import DataLoader

    from unified_reward.modules.optimization import adamw, warmup_cosine
    from unified_reward.modules.vlm_grpo import VLMGRPOModule
    from unified_reward.synthetic.oracle_judge import OracleJudge

    processor, model = _policy(args.side)
    module = VLMGRPOModule(
        processor,
        model,
        judge=OracleJudge(),
        reward="score",
        group_size=args.group,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        beta=BETA,
        loss_type="grpo",
        reference="adapter",
        optimizer=adamw(args.lr),
        scheduler=partial(warmup_cosine, warmup_ratio=0.0, min_lr_rate=1.0),  # constant, as TRL's side
    )
    loader = DataLoader(_records(args.prompts * args.steps), batch_size=args.prompts, collate_fn=module.collate)
    times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args):
            self.started = time.perf_counter()

        def on_train_batch_end(self, *args):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.started)

    trainer = L.Trainer(
        max_steps=args.steps,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepTimer()],
    )
    with MemoryWatch() as memory:
        trainer.fit(module, train_dataloaders=loader)
    return {"step_s": _median(times[args.warmup :]), "memory_mib": memory.peak_over_start_mib, "steps": len(times)}


def _question_and_image(conversation: list[dict]) -> tuple[str, object]:
    """The question and image of a one-turn conversation as TRL passes it (image parts filled in)."""
    parts = conversation[-1]["content"]
    question = next(p["text"] for p in parts if p["type"] == "text")
    image = next(p["image"] for p in parts if p["type"] == "image")
    return question, image


def oracle_reward(prompts, completions, image, **kwargs) -> list[float]:
    """TRL reward function: the oracle's fraction of the asked attributes an answer states correctly."""
    from unified_reward.synthetic.oracle import score_answer

    return [
        score_answer(_question_and_image(prompt)[0], picture, completion[0]["content"]).fraction
        for prompt, completion, picture in zip(prompts, completions, image, strict=True)
    ]


def _prompt_processor(processor):
    """A transformers `ProcessorMixin` over our processor, for TRL: TRL needs one to treat the model as a VLM, and
    ours is not one. Prompts are encoded with our own encoding, so both sides see the same tokens and pixels.
    TRL calls it three ways: `apply_chat_template(conversations, tokenize=True, return_dict=True)` for the
    generation prompts (per-prompt id lists + media tensors), `apply_chat_template(conversation, tokenize=False)`
    for a prompt's "text", and `__call__(images=..., text=texts, padding=True)` for the forward passes' media
    inputs. The "text" handed between the last two is the question itself: the chat template is applied inside
    `encode_chat`."""
    from transformers import ProcessorMixin

    from unified_reward.encoding.chat import encode_chat, pad_batch
    from unified_reward.prompts.templates import render_policy_prompt

    def encode(question: str, image) -> object:
        return encode_chat(processor, render_policy_prompt(TASK, question, image), None)

    class PolicyPromptProcessor(ProcessorMixin):
        attributes = ["tokenizer"]

        def __init__(self, tokenizer):
            super().__init__(tokenizer)

        def apply_chat_template(self, conversation, *args, tokenize: bool = False, return_dict: bool = False, **kw):
            if kw.get("add_generation_prompt") is False or kw.get("continue_final_message"):
                raise ValueError("the policy prompt always ends with the generation prompt")
            single = bool(conversation) and isinstance(conversation[0], dict)
            conversations = [conversation] if single else conversation
            if not tokenize:
                texts = [_question_and_image(c)[0] for c in conversations]
                return texts[0] if single else texts
            if not return_dict:
                raise ValueError("TRL asks for return_dict=True")
            encoded = [encode(*_question_and_image(c)) for c in conversations]
            batch = pad_batch(encoded, processor, left=True)
            return {
                "input_ids": [e.input_ids for e in encoded],
                "attention_mask": [[1] * len(e.input_ids) for e in encoded],
                # per-token lists: TRL left-pads them like the ids
                "mm_token_type_ids": [
                    row[len(row) - len(e.input_ids) :].tolist()
                    for row, e in zip(batch["mm_token_type_ids"], encoded, strict=True)
                ],
                "pixel_values": batch["pixel_values"],
                "image_grid_thw": batch["image_grid_thw"],
            }

        def __call__(self, images=None, text=None, padding=True, return_tensors="pt", **kw):
            if images is None or text is None:
                raise ValueError("only the question + image call is supported")
            encoded = [encode(q, pictures[0]) for q, pictures in zip(text, images, strict=True)]
            batch = pad_batch(encoded, processor, left=True)  # TRL left-pads the prompts it forwards
            batch.pop("labels")
            return batch

        def batch_decode(self, *args, **kw):
            return self.tokenizer.batch_decode(*args, **kw)

    return PolicyPromptProcessor(processor.tokenizer)


def run_trl(args) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    processor, model = _policy(args.side)
    records = _records(args.prompts * args.steps)
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):  # before the step's inputs are prepared: sampling is inside
            self.started = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.started)

    dataset = Dataset.from_dict(
        {
            "prompt": [
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r.prompt}]}] for r in records
            ],
            "image": [r.context for r in records],
        }
    )
    with tempfile.TemporaryDirectory() as output:
        config = GRPOConfig(
            output_dir=output,
            num_generations=args.group,
            per_device_train_batch_size=args.prompts * args.group,
            gradient_accumulation_steps=1,
            num_iterations=1,
            max_completion_length=args.max_new_tokens,
            temperature=1.0,
            beta=BETA,
            epsilon=0.2,
            loss_type="grpo",
            scale_rewards="group",
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            optim="adamw_torch",
            max_steps=args.steps,
            shuffle_dataset=False,  # the same questions in the same order as ours
            gradient_checkpointing=False,
            save_strategy="no",
            report_to=[],
            logging_steps=10_000,
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[oracle_reward],
            args=config,
            train_dataset=dataset,
            processing_class=_prompt_processor(processor),
            callbacks=[StepTimer()],
        )
        with MemoryWatch() as memory:
            trainer.train()
    return {"step_s": _median(times[args.warmup :]), "memory_mib": memory.peak_over_start_mib, "steps": len(times)}


FLAGS = ("prompts", "group", "max_new_tokens", "steps", "warmup", "lr", "side")


def _spawn(method: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", method]
    for flag in FLAGS:
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{method} failed:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8, help="questions per step")
    parser.add_argument("--group", type=int, default=4, help="answers sampled per question (G)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--side",
        type=int,
        default=56,
        help="pixels per image side after resizing (multiple of 28): 56 = 4 visual tokens per image",
    )
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup >= args.steps:
        parser.error(f"--warmup ({args.warmup}) must leave steps to time (--steps {args.steps})")
    if args.worker:
        result = {"ours": run_ours, "trl": run_trl}[args.worker](args)
        print("RESULT " + json.dumps(result))
        return
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    samples = args.prompts * args.group
    print(
        f"tiny Qwen2-VL {TINY}, LoRA r16, {args.prompts} prompts x G={args.group} = {samples} samples a step, "
        f"<= {args.max_new_tokens} new tokens, {args.steps} steps ({args.warmup} warm-up), "
        f"{(args.side // 28) ** 2} tokens per image, {device}"
    )
    memory: dict[str, list[float]] = {"ours": [], "trl": []}

    def samples_per_second(method: str) -> float:
        result = _spawn(method, args)
        memory[method].append(result["memory_mib"])
        return samples / result["step_s"]

    results = alternate(
        {"ours": lambda: samples_per_second("ours"), "TRL": lambda: samples_per_second("trl")},
        repeats=args.repeats,
        warmup=0,  # every run is a fresh process with its own warm-up steps
    )
    peaks = {k: statistics.median(v) for k, v in memory.items()}
    print(
        f"       peak memory (median): ours +{peaks['ours']:.1f} MiB, TRL +{peaks['trl']:.1f} MiB: "
        f"memory x{peaks['ours'] / max(peaks['trl'], 1e-9):.2f}"
    )
    report(results, "ours", "TRL", unit="samples/s")  # last line: ratio=<ours/TRL>


if __name__ == "__main__":
    main()
