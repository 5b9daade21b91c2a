"""Evaluate a judge on a reward-model benchmark, as the benchmark's authors define its numbers.

python src/evaluate.py benchmark=synthetic judge=logs/reward_joint/runs/<time>/judge
python src/evaluate.py benchmark=vl_rewardbench benchmark.root=<local copy> judge=CodeGoat24/UnifiedReward-qwen-7b \
    judge_family=qwen2_5_vl protocol.read=text
python src/evaluate.py benchmark=genai_bench_image benchmark.root=<local copy> judge=<export> protocol.order=both

Writes to its run folder: predictions-r*.jsonl (appended while judging; `output=<that folder>` resumes a killed
run), results.json, results.md, tensorboard/ and status.json.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without `pip install -e .`

log = logging.getLogger("evaluate")


def load_reader(cfg: DictConfig, protocol):
    """The judge given by `judge=`: oracle, random, a judge export, or an official checkpoint (`judges.load_judge`)."""
    from unified_reward.judging.loading import load_judge
    from unified_reward.reward_benchmarks.harness import JudgeReader

    if cfg.judge == "oracle" and not cfg.benchmark.name.startswith("synthetic"):
        from unified_reward.errors import UserError

        raise UserError(
            "judge=oracle reads the synthetic world's pixels: "
            "it judges benchmark=synthetic and synthetic_generated only"
        )
    judge = load_judge(
        cfg.judge,
        seed=cfg.protocol.seed,
        family=cfg.judge_family,
        templates=cfg.templates,
        dtype=cfg.dtype,
        batch_size=cfg.batch_size,
        named=cfg.named_judges,
    )
    return JudgeReader(judge, protocol)


def evaluate(cfg: DictConfig) -> dict:
    from torch.utils.tensorboard import SummaryWriter

    from unified_reward.callbacks.progress_bar import with_terminal_progress
    from unified_reward.callbacks.progress_log import ProgressLog
    from unified_reward.errors import UserError
    from unified_reward.reward_benchmarks.harness import (
        BenchmarkPrediction,
        PredictionFile,
        Protocol,
        done_ids,
        read_predictions,
    )
    from unified_reward.reward_benchmarks.report import markdown_table, summarize

    L.seed_everything(cfg.protocol.seed, workers=True)
    protocol = Protocol(**OmegaConf.to_container(cfg.protocol, resolve=True))
    output = Path(cfg.output)
    if OmegaConf.is_missing(cfg.benchmark, "root"):
        raise UserError(
            f"benchmark={cfg.benchmark.name} needs benchmark.root=<folder>: {cfg.benchmark.layout} "
            '(README, "Evaluating judges on reward-model benchmarks")'
        )
    items, read_skipped = hydra.utils.instantiate(cfg.benchmark.reader)
    position = {item.id: index for index, item in enumerate(items)}
    done = done_ids(output)
    todo = [item for item in items if item.id not in done]
    log.info(
        "%s: %d items (%d skipped when read), %d judged before, %d to judge",
        cfg.benchmark.name,
        len(items),
        len(read_skipped),
        len(items) - len(todo),
        len(todo),
    )
    module = BenchmarkPrediction(load_reader(cfg, protocol), protocol, strict=cfg.strict)
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, **with_terminal_progress([PredictionFile(output), ProgressLog()])
    )
    if todo:
        loader = DataLoader(todo, batch_size=cfg.batch_size, collate_fn=list)
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return {}
    rows = sorted(read_predictions(output), key=lambda row: position.get(row["id"], len(position)))  # file order
    results = summarize(
        cfg.benchmark.name,
        rows,
        read_skipped,
        resamples=cfg.bootstrap_resamples,
        seed=cfg.protocol.seed,
    )
    if results["items"] and not results["judged"]:
        first = results["skipped_items"][0]
        raise UserError(
            f"{cfg.benchmark.name}: none of its {results['items']} items could be judged ({results['skipped']}); "
            f"the first: {first['detail'] or first['reason']} (is benchmark.root={cfg.benchmark.get('root')} the "
            "benchmark's folder, its media unpacked where the README's table says?)"
        )
    facts = asdict(protocol) | {"judge": cfg.judge, "templates": cfg.templates}
    (output / "results.json").write_text(json.dumps(results | {"protocol": facts}, indent=2))
    (output / "results.md").write_text(markdown_table(results, facts))
    with SummaryWriter(str(output / "tensorboard")) as writer:
        for name, value in {**results["metrics"], **results["checks"]}.items():
            writer.add_scalar(f"{cfg.benchmark.name}/{name}", value, 0)
    print("\n" + markdown_table(results, facts))
    return results


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    from unified_reward.quiet import silence_known_noise
    from unified_reward.runs import run_status

    silence_known_noise()
    with run_status(cfg.output):
        evaluate(cfg)


if __name__ == "__main__":
    main()
