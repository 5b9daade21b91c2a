"""Training samples/s and peak memory of `VLMDPOModule` vs TRL 1.16.0's `DPOTrainer`, in one run.

    python benchmarks/bench_vlm_dpo.py [--batch 8] [--steps 12] [--warmup 3] [--repeats 5] [--side 56]
        [--media image video]

Both train the same tiny Qwen2-VL (LoRA r16, reference = adapter disabled, sigmoid DPO, AdamW, no gradient
checkpointing) on the same synthetic-world pairs in the same order, with the same batch size, inside their
own trainers (Lightning; transformers' Trainer). TRL has no video DPO and no collator for our offline
tokenizer, so its batches come from our collator in TRL's own layout (`layout=separate`: the prompt and its
media once for each answer, a plain padding mask), which is exactly what TRL's vision collator builds; its
loss, reference pass and training step are TRL's. Ours uses the shared layout (media and prompt once per
pair), and runs a second time in TRL's layout, which shows how much of the difference the layout makes.
`--side` sets the media size. Each run is a fresh process; the three are alternated (ours, ours in TRL's
layout, TRL, ours, ...) over `--repeats` rounds (`ab.alternate`). Speed of a run: median step time after
`--warmup` steps; of a side: the median over its runs.
Memory: on CPU the peak resident memory during training over the resident memory just before it (sampled
every 2 ms); on GPU `max_memory_allocated` over the memory allocated before training.
The last line is `ratio=<ours/baseline>`: the smaller of the image and video ratios of median samples/s
(target >= 1.3, with no more peak memory than TRL).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial

import torch

from ab import alternate, report
from unified_reward.synthetic.vocabulary import world_vocabulary

TINY = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}


def _records(media: str, count: int):
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import decode_sample, encode_record
    from unified_reward.synthetic.world import WorldConfig, make_record

    task = f"{media}_understanding"
    sampling = VideoSampling(num_frames=8)
    return [
        decode_sample(encode_record(make_record(WorldConfig(), "train", task, "pair", i)), sampling)
        for i in range(count)
    ]


class MemoryWatch:
    """Peak memory while active, over the level at the start."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.start = self.peak = self._rss()
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.running = False
            self.thread.join()

    @property
    def peak_over_start_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def _policy(side: int):
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    torch.manual_seed(0)
    pixels = side * side
    processor = build_processor(
        "qwen2_vl",
        min_pixels=pixels,
        max_pixels=pixels,
        image_mean=[0.13, 0.13, 0.12],
        tiny_vocabulary=world_vocabulary(),
    )
    model = build_vlm("qwen2_vl", processor, tiny=TINY, finetune="lora", lora_rank=16, lora_dropout=0.0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return processor, model.to(device)


def _median(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[len(ordered) // 2]


def run_ours(media: str, batch: int, steps: int, warmup: int, lr: float, side: int, layout: str = "shared") -> dict:
    import lightning as L
    from torch.utils.data import DataLoader

    from unified_reward.modules.optimization import adamw, warmup_cosine
    from unified_reward.modules.vlm_dpo import VLMDPOModule

    processor, model = _policy(side)
    module = VLMDPOModule(
        processor,
        model,
        reference="adapter",
        layout=layout,
        optimizer=adamw(lr),
        scheduler=partial(warmup_cosine, warmup_ratio=0.0, min_lr_rate=1.0),  # constant, as TRL's side
    )
    loader = DataLoader(_records(media, batch * steps), batch_size=batch, collate_fn=module.collate)
    times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args):
            self.started = time.perf_counter()

        def on_train_batch_end(self, *args):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.started)

    trainer = L.Trainer(
        max_steps=steps,
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
    return {"step_s": _median(times[warmup:]), "memory_mib": memory.peak_over_start_mib}


def run_trl(media: str, batch: int, steps: int, warmup: int, lr: float, side: int) -> dict:
    from datasets import Dataset
    from transformers import ProcessorMixin, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from unified_reward.encoding.policy_pairs import PolicyPairCollator

    processor, model = _policy(side)
    records = _records(media, batch * steps)
    collate = PolicyPairCollator(processor, layout="separate")

    class TokenizerOnlyProcessor(ProcessorMixin):
        """TRL requires a ProcessorMixin to treat the model as a VLM; ours has no transformers processor class
        (its video side needs torchvision), and the batches come from the collator below anyway."""

        attributes = ["tokenizer"]

        def __init__(self, tokenizer):
            super().__init__(tokenizer)

    def trl_batch(examples: list[dict]) -> dict:
        ours = collate([records[e["index"]] for e in examples])
        keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw")
        keys += ("pixel_values_videos", "video_grid_thw")
        out = {k: ours[k] for k in keys if k in ours}
        out["completion_mask"] = (ours["labels"] != -100).long()
        return out

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.started)

    with tempfile.TemporaryDirectory() as output:
        config = DPOConfig(
            output_dir=output,
            per_device_train_batch_size=batch,
            max_steps=steps,
            learning_rate=lr,
            lr_scheduler_type="constant",
            beta=0.1,
            loss_type=["sigmoid"],
            gradient_checkpointing=False,
            remove_unused_columns=False,
            max_length=None,
            save_strategy="no",
            report_to=[],
            logging_steps=10_000,
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
        )
        dataset = Dataset.from_dict({"images": [[] for _ in records], "index": list(range(len(records)))})
        trainer = DPOTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=TokenizerOnlyProcessor(processor.tokenizer),
            data_collator=trl_batch,
            callbacks=[StepTimer()],
        )
        trainer.train_dataset = dataset
        with MemoryWatch() as memory:
            trainer.train()
    return {"step_s": _median(times[warmup:]), "memory_mib": memory.peak_over_start_mib}


def _worker(args) -> None:
    run = {
        "ours": run_ours,
        "ours_separate": lambda *a: run_ours(*a, layout="separate"),
        "trl": run_trl,
    }[args.worker]
    result = run(args.media[0], args.batch, args.steps, args.warmup, args.lr, args.side)
    print("RESULT " + json.dumps(result))


def _spawn(method: str, media: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--media", media]
    for flag in ("batch", "steps", "warmup", "lr", "side"):
        command += [f"--{flag}", str(getattr(args, flag))]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{method} / {media} failed:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--side",
        type=int,
        default=56,
        help="pixels per image side after resizing (multiple of 28): 56 = 4 visual tokens per image (the "
        "experiments' setting), 224 = 64; an 8-frame video takes 4x the tokens of an image",
    )
    parser.add_argument("--media", nargs="+", default=["image", "video"], choices=["image", "video"])
    parser.add_argument("--worker", choices=["ours", "ours_separate", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    tokens = (args.side // 28) ** 2
    print(
        f"tiny Qwen2-VL {TINY}, LoRA r16, batch {args.batch}, {args.steps} steps ({args.warmup} warm-up), "
        f"{tokens} tokens per image / {4 * tokens} per 8-frame video, {device}"
    )
    ratios = []
    for media in args.media:
        memory: dict[str, list[float]] = {"ours": [], "ours_separate": [], "trl": []}

        def pairs_per_second(method: str, media: str = media, memory: dict = memory) -> float:
            result = _spawn(method, media, args)
            memory[method].append(result["memory_mib"])
            return args.batch / result["step_s"]

        print(f"{media}:")
        results = alternate(
            {
                "ours": lambda: pairs_per_second("ours"),
                "ours in TRL's layout": lambda: pairs_per_second("ours_separate"),
                "TRL": lambda: pairs_per_second("trl"),
            },
            repeats=args.repeats,
            warmup=0,  # every run is a fresh process with its own warm-up steps
        )
        ratios.append(report(results, "ours", "TRL", unit="pairs/s"))
        peaks = {k: statistics.median(v) for k, v in memory.items()}
        print(
            f"       peak memory (median): ours +{peaks['ours']:.1f} MiB, TRL's layout +{peaks['ours_separate']:.1f} "
            f"MiB, TRL +{peaks['trl']:.1f} MiB: memory x{peaks['ours'] / max(peaks['trl'], 1e-9):.2f}"
        )
    print(f"ratio={min(ratios):.3f}")


if __name__ == "__main__":
    main()
